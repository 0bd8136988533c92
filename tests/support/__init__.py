"""What the tests share, one module for each kind of thing it holds (none named test_*, so pytest collects none
of it): people.py the residents and back-office people and how they sign in, catalog.py the small catalogue,
cases.py cases made through the API, rows.py cases and what hangs on them made straight as rows, files.py the
bytes of real PNG, JPEG and PDF files, security.py what the SECURITY.md tests look at, server.py the real
server in a subprocess, settings.py settings from config.toml with overrides. The fixtures built on them are
in tests/conftest.py."""
