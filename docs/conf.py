"""Sphinx configuration: the API reference, generated from the docstrings (``make docs``).

Only ``docs/api/`` is Sphinx's: the other pages in ``docs/`` are Markdown read on their own.
The build runs with warnings as errors (``sphinx-build -W``), so a docstring whose reST is
broken, or an object documented twice, fails ``make docs`` and the test that runs it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from sphinx.util.nodes import make_refnode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))  # the checkout's package, installed or not

from ratekeeper.version import __version__  # noqa: E402

project = "ratekeeper"
author = "the ratekeeper authors"
copyright = "the ratekeeper authors"
release = version = __version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx"]
root_doc = "api/index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["*.md", "**/*.md", "envoy", "img"]

# Members in source order, inherited ones too (the Limiter's come from its base), each class's
# __init__ docstring shown with the class; type hints in the description (they are long); a
# module's __all__ says what it documents.
autodoc_member_order = "bysource"
autoclass_content = "both"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "inherited-members": "BaseException"}
python_use_unqualified_type_names = True

# Every cross-reference must resolve (nitpicky), but those into other projects (the build has no
# network, so intersphinx cannot fetch their inventories), type variables and private names
# (which have no entry by design).
nitpicky = True
_OTHER_PROJECTS = (
    "collections", "typing", "os", "pathlib", "ipaddress", "enum", "asyncio", "grpc", "django",
    "starlette", "flask", "werkzeug", "ssl", "prometheus_client",
)  # fmt: skip
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(_OTHER_PROJECTS)})\..*"),
    (r"py:.*", r"(.*\.)?~?[A-Z]"),  # a type variable: P, R
    (r"py:.*", r"(.*\.)?_.*"),  # a private name
    # prometheus_client's registry, imported for type checking only
    (r"py:class", r"CollectorRegistry"),
    # the parsed files PolicyTree.from_specs assembles: built only inside ratekeeper.config
    (r"py:class", r"ratekeeper\.config\.schema\.DomainSpec"),
]


def _by_unqualified_name(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a name written without its module (``Key | None`` in an annotation, read as
    text under ``from __future__ import annotations``) to the one documented object of that
    name; ``None`` (still missing) when none or several are."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or "." in target:
        return None
    domain = env.domains["py"]
    found = [name for name in domain.objects if name.rsplit(".", 1)[-1] == target]
    entries = {(domain.objects[n].docname, domain.objects[n].node_id): n for n in found}
    if len(entries) != 1:  # an object documented under two names is still one
        return None
    entry = domain.objects[found[0]]
    return make_refnode(
        app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, found[0]
    )


def setup(app: Any) -> None:
    app.connect("missing-reference", _by_unqualified_name)


html_theme = "alabaster"
html_title = f"ratekeeper {release} API reference"
