"""Contract checks against Rhombus's published OpenAPI spec."""
