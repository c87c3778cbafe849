"""The span journal: each ended span is written, encoded, into a file-backed region of its process
the moment it ends, and shipped from there; a region outlives its process, so whoever outlives a
dead worker ships what it left (docs/JOURNAL.md).

* :mod:`.region` - the file format: a header, in-flight request slots, a ring of span records
  (crash-consistent: a record counts once the head passes it).
* :mod:`.directory` - where the regions of one uWSGI instance live, and who may read a region
  (a living owner holds an exclusive ``flock`` on it; the kernel drops it at any death).
* :mod:`.inflight` - the requests a process is serving, as slots, and the ERROR span a slot
  becomes when its process died.
* :mod:`.ship` - turning records into OTLP request bodies and handing them to the exporter.
* :mod:`.processor` - the span processor that writes, and the thread that ships, adopts dead
  regions and keeps the in-flight slots up to date.
"""
