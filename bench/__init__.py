"""`make bench`: caseshare's performance figures, each measured beside its baseline in one run.

Figures are ratios against a baseline on the same machine in the same run (a bare FastAPI
endpoint, raw aiokafka produce, the broker's own produce-to-consume latency), so that a busy
or slow machine moves both sides together. Benchmarks are reported, never asserted.
"""
