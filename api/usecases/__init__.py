"""The use cases: plain values in, a unit of work, the domain's rules applied. No HTTP here."""
