"""Remotes: moving repos between stores (push, pull, clone), as git moves commits."""
