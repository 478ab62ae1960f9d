"""The default Qualtrics request rate of a connection: a light module, so the command line reads
it for its help without opening the database layer (:mod:`qualflow.connections.models`)."""

DEFAULT_REQUESTS_PER_MINUTE = 3000
