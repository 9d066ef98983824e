"""The application layer: the use cases every adapter (CLI, local API, console, jobs) calls.

Below it, ``exchange`` holds the protocol and the node; above it, the adapters only parse their
input, call one function here and present its answer. A use case written here once is the same
act whichever adapter asks for it: the same role check (:data:`gateway.exchange.service.ACCESS`),
the same stored rows, the same audit event.

    context   :class:`~gateway.app.context.AppContext`: the configuration, the store (migrated)
              and the actor a use case runs for
    admin     administration: legal holds (place, release, list), API tokens (add, list, revoke)
    conversations  the list's case numbers, debtors and search index for older conversations
    jobs      the scheduled jobs' last runs (the console's jobs page)
    keys      key rotation: rotate, activate, revoke, publish, KEK rotate, rewrap, destroy, list
    users     the console's users: add, disable, list
"""
