"""Policy configuration: envoyproxy/ratelimit YAML and the native spelling, validated once."""
