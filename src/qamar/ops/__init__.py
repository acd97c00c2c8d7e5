"""Operating the rover from Earth: dictionary, packets, archive (issue 7, foundation layers).

- :mod:`qamar.ops.dictionary`: the versioned command/telemetry dictionary (YAML, pydantic),
  operator command lines such as ``DRIVE_TO lat=-89.45 lon=222.7``;
- :mod:`qamar.ops.xtce`: the dictionary as XTCE 1.2 for Yamcs (yamcs-pymdb);
- :mod:`qamar.ops.packets`: CCSDS Space Packets with CUC time, HMAC-authenticated telecommands
  with anti-replay numbers, a decoder that only ever raises PacketError;
- :mod:`qamar.ops.archive`: the append-only packet archive (SQLite or PostgreSQL) that
  acknowledges a packet only once its batch is committed.
"""
