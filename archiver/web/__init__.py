"""The web view: another face over the operations (like `cli/` and `service/`), with no rules and no SQL of its
own. People are the station's own users; what each may see is what the operations let them."""
