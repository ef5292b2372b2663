"""The ``bayport`` command: server commands (serve, api, conductor, netd, db) and client
commands in Magnum's words (baymodel-create, bay-create, pod-create, ...)."""
