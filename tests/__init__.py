"""The test suite; a package so that the bench and the soak reuse its servers and payloads."""
