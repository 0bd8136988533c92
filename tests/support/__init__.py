"""What the tests share, one module for each kind of thing it holds; none is named test_*, so pytest collects
none of it. The fixtures built on them (catalog, people, admin, zhang) are in tests/conftest.py.

people.py    the demo residents (张三, 李娟, 王五), back-office people on one phone scheme, signing in
catalog.py   the small catalogue whose answers can be counted by hand, and loading it
cases.py     cases made through the API: the World of the applications tests, submit, the clerks' actions
rows.py      cases, evaluations and notifications made straight as rows
files.py     the bytes of small real PNG, JPEG and PDF files
security.py  what the SECURITY.md tests look at: problem answers, dumps of rows and Redis, log lines
server.py    the real server in a subprocess on a free port
settings.py  settings from config.toml with YWT_* overrides
asgi.py      the app driven in-process for a whole session
"""
