"""DLMS/COSEM: HDLC framing (IEC 62056-46), the TCP wrapper (IEC 62056-47), OBIS/unit tables.

APDUs and A-XDR data come from `dlms-cosem==21.3.2` (MIT); its transport classes are blocking
and only parse frames travelling to a client, so framing is done here, for both directions.
"""
