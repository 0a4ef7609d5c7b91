# The integration fixtures (a real deployment of the classroom) are shared by the
# tests under tests/ and each image's own test folder under images/.
pytest_plugins = ["tests.integration.fixtures"]
