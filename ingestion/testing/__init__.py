"""Testing support shipped with headwater: a pytest plugin (entry point ``pytest11``)."""
