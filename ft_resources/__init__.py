"""Resources: everything with side effects or hardware behind a configurable class."""
