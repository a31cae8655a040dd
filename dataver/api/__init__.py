"""Pachyderm's 2.x gRPC API served over a dataver store (`dataver serve-api`).

Users' code written against Pachyderm's own SDK (`pachyderm_sdk`) runs unchanged: the services
and messages are pachd's (`pfs_v2.API`, `pps_v2.API`, `transaction_v2.API`, `versionpb_v2.API`,
`auth_v2.API`), built on the generated classes the `pachyderm-sdk` package publishes, and every
request is answered through `dataver.Client`, as the CLI and the console are. An application
layer, like them: nothing below imports it.
"""
