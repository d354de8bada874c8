"""Plain domain types of the suggestion service; no transport or storage here."""
