"""The cloud-edge messages and the one codec.

What belongs here: the message classes exchanged over the link (``messages``), the structured
resource references they carry (``refs``), and ``codec`` — the only place where frame bytes
become message objects and back, with size limits enforced before parsing.

What does not: sockets, sessions, retries, stores. This package is pure data plus a codec; the
transport moves the strings, the cloud hub and the edge agent decide what the messages mean.
"""
