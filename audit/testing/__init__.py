"""Test utilities, not part of the auditing API: small datasets and runs in the real layouts.

Used by the test suite, the benchmarks and the generated (synthetic) dataset adapters. Nothing
here is needed to audit a real model; modules are imported one by one (this file imports none).
"""
