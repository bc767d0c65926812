"""The archive on disk: its layout and copies (store), the data dir's checks (datadir), the day manifests, and
opening a whole data dir (workspace). Below ingest, audit, backup and retention, which all use it."""
