"""Services that write, one module per job: submit a run, run an item, close a run.

The API, the admin, the Huey tasks and the management commands all call these, so there is one
way to submit a run and one way to record an answer.
"""
