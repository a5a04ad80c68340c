"""`pixtralctl render`'s engine: the real program run for a stack file under the Pulumi SDK's mock engine, with no
cloud and no CLI (engine.py), what the mock clouds answer per resource type (cloud.py), and the TLS material they
make (tls.py). Tests and `pixtralctl render` read the record a run leaves; pixtralctl/render.py writes the review.

It works after the base install (`pip install -e .`): its one dependency beyond the program's is `cryptography`,
which is a base dependency for this reason.
"""
