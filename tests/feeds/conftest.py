# The readers here are scripts run by other interpreters (Debian's python3 with python3-gi,
# node), not test modules.
collect_ignore = ["libical_reader.py"]
