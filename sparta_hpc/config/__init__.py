"""The configuration: schema, dotted overrides, numeric ranges, checks, per-job resources."""
