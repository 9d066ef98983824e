"""The application layer: the use cases every adapter (CLI, local API, console, jobs) calls.

Below it, ``exchange`` holds the protocol and the node; above it, the adapters only parse their
input, call one function here and present its answer. A use case written here once is the same
act whichever adapter asks for it: the same role check (:data:`gateway.exchange.service.ACCESS`),
the same stored rows, the same audit event.

    context       :class:`~gateway.app.context.AppContext`: the configuration, the store
                  (migrated), the actor and (in a server) the node's keys
    admin         legal holds (place, release, list), API tokens (add, list, revoke)
    keys          key rotation: rotate, activate, revoke, publish, KEK rotate, rewrap, destroy,
                  list, import a CA's certificate
    key_setup     a node's first keys: generate, request, file KEK, demo CA and its CRL
    conversations the list's case numbers, debtors and search index for older conversations
    jobs          the scheduled jobs' last runs (the console's jobs page)
    users         the console's users: add, disable, list; user_directory, sessions: sign-in
    purge         the retention purge: plan, run now, runs, signed reports (retention: the
                  policies; tombstone_check, audit_checkpoints: what binds them to the trail)
    audit         the trail: search, verify, export/show ranges, checkpoints, read purposes
    scheduled     the scheduled jobs' bodies (locks, slots: one node runs each); schedule:
                  ``[scheduler]`` read and checked, each job's trigger and next run
    checks        the node's pre-flight (``gateway check-config``, ``gateway serve``)
    backup        a node's state in one private folder, and back (``gateway backup|restore``)
    documents     check a document, convert JSON to XML (``gateway validate|convert``)
    renditions    a document file's signed PDF rendition (``gateway render``)
    passwords, tls  the console's password rules and hashing; the servers' TLS contexts
    failures      what kind of failure an exception is: code, Russian text, exit code
    directory, originals, proceedings, disclosures, existence, outbox, database
                  the other acts and reads the adapters share
"""
