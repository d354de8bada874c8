"""The suite layer: the `tuning` command (:mod:`tuning_suite.cli`, one module per subcommand),
`tuning demo` (:mod:`tuning_suite.demo`) and backups (:mod:`tuning_suite.backup`).

It sits on top: it starts the services, runs workers and migrates databases, so it may import
every package below it, and none of them imports it (docs/ARCHITECTURE.md, "Layers").
"""
