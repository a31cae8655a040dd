"""Service pipelines: a long-lived server over the newest commits of its inputs, behind dataver's
own HTTP port, switched to new commits with no failed request (Pachyderm's `service`).

`instance` runs one server (on either runtime, confined as jobs are), `proxy` is the port users
reach, `supervisor` keeps a service up and follows its inputs, `status` is what `list-service`
reads, `requestlog` commits what was asked and answered (`log_requests`).
"""
