"""The limits and character sets the email standards fix, named once with their source.

They equal email-validator's `rfc_constants` (our yardstick); the fast path reads them from here so
a reader can check each one against its RFC section.
"""

from __future__ import annotations

from typing import Final

# RFC 5322 §3.2.3: atext, the characters of a dot-atom (letters, digits and these specials).
ATEXT_SPECIALS: Final = "!#$%&'*+-/=?^_`{|}~"

# RFC 5321 §4.5.3.1.1: a local part is at most 64 octets.
LOCAL_PART_MAX_OCTETS: Final = 64
# RFC 1035 §2.3.4: a name is at most 255 octets on the wire, two of which are the length octet
# of the first label and the root label, so 253 characters in dotted text.
DOMAIN_MAX_OCTETS: Final = 253
# RFC 1035 §2.3.4: a label is at most 63 octets.
LABEL_MAX_OCTETS: Final = 63
# RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the angle brackets, so an address
# is at most 254 (RFC 3696 errata 1690).
ADDRESS_MAX_OCTETS: Final = 254

# RFC 5322 §2.1.1: a header line, display name and all, is at most 998 characters. A cell longer
# than that is not an address in any form, so it is judged on its length alone and never parsed.
CELL_MAX_OCTETS: Final = 998

# RFC 5890 §2.3.1: an A-label (IDNA-encoded label) starts with this ACE prefix.
ACE_PREFIX: Final = "xn--"
