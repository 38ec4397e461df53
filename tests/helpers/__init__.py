"""What several test modules share: waiting for a server, running a sweep and reading what it
stored, watching processes, and writing small corpora. Test modules import from here, never from
each other."""
