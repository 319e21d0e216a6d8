"""What tests import: the socket client, server processes, services and factories.

Fixtures stay in conftest.py; this package holds no tests and never imports conftest.
"""
