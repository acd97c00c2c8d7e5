"""Operating the rover from Earth (issue 7): dictionary, packets, archive, link, ground service.

- :mod:`qamar.ops.dictionary`: the versioned command/telemetry dictionary (YAML, pydantic),
  operator command lines such as ``DRIVE_TO lat=-89.45 lon=222.7``;
- :mod:`qamar.ops.xtce`: the dictionary as XTCE 1.2 for Yamcs (yamcs-pymdb);
- :mod:`qamar.ops.packets`: CCSDS Space Packets with CUC time, HMAC-authenticated telecommands
  with anti-replay numbers, a decoder that only ever raises PacketError;
- :mod:`qamar.ops.archive`: the append-only packet archive (SQLite or PostgreSQL) that
  acknowledges a packet only once its batch is committed;
- :mod:`qamar.ops.link`: the delayed Earth <-> lander <-> rover link (light time and windows from
  the geometry, outages, loss) on a discrete-event simulation clock;
- :mod:`qamar.ops.sequence`: time-tagged command sequences (YAML or text);
- :mod:`qamar.ops.ground`: the ground service core: archive, limit alarms, the command queue
  with verification stages and window-aware timeouts, replay; its state in the archive's database;
- :mod:`qamar.ops.server`: the ground service on the wall clock, the twin over TCP, the JSON API
  and the web console (127.0.0.1 unless told otherwise).
"""
