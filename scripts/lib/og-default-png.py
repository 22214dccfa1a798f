# Generates templates/og-default.png (run from the repository root): the branded link preview of a share with no image
# (1200x630, the size WhatsApp, iMessage, Telegram and Slack show large).
import struct, zlib
W, H = 1200, 630
PAPER, ACCENT, SOFT, LINE = (0xff,0xfd,0xf8), (0x9a,0x3b,0x5b), (0xf3,0xdc,0xe3), (0xe6,0xe1,0xd6)
palette = [PAPER, ACCENT, SOFT, LINE]
def px(x, y):
    # an open book: two pages with ruled lines, a heart above, an accent bar below
    cx, cy = 600, 330
    hx, hy = (x-600)/60.0, (y-150)/60.0
    # heart: (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 (y up)
    yy = -hy
    if (hx*hx + yy*yy - 1)**3 - hx*hx*yy**3 <= 0: return 1
    if 560 <= y < 576 and 300 <= x < 900: return 1
    if 230 <= y < 500 and 330 <= x < 870:
        if abs(x-600) < 4: return 1
        if (y-250) % 40 < 4 and 360 <= x < 840 and abs(x-600) > 30: return 3
        return 2
    return 0
raw = b"".join(b"\x00" + bytes(px(x, y) for x in range(W)) for y in range(H))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 3, 0, 0, 0)) \
    + chunk(b"PLTE", b"".join(bytes(c) for c in palette)) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
open("templates/og-default.png", "wb").write(png)
print(len(png))
