#!/usr/bin/python3
"""Generates the small decoder test images in this directory and expected.json, the pixels
Pillow produces for each of them (Image.open(f).convert("RGB"), with and without
ImageOps.exif_transpose), so the C decoder can be checked byte for byte against the reference
loader without Python at test time.

Needs Debian's python3-pil and python3-numpy (run with /usr/bin/python3). The YCCK JPEG is
written by make_ycck.c (libjpeg): build it first, see README.md. Everything is deterministic.
"""
import io, json, os, struct, zlib
import numpy as np
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.dirname(HERE)


def pattern(w, h, seed=1):
    """Smooth gradients plus a little noise, and marked corners so a flip or rotation shows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(w - 1, 1))
    g = (y * 255 // max(h - 1, 1))
    b = ((x + y) * 7) % 256
    img = np.stack([r, g, b], -1).astype(np.int32) + rng.integers(-6, 7, (h, w, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    img[0:3, 0:3] = (255, 0, 0)          # top-left red
    img[0:3, w - 3:w] = (0, 255, 0)      # top-right green
    img[h - 3:h, 0:3] = (0, 0, 255)      # bottom-left blue
    return img


def exif_with_orientation(o):
    e = Image.Exif()
    e[0x0112] = o
    return e.tobytes()


# ---- a PNG writer for what Pillow cannot write (16-bit colour, interlaced) -------------------
def png_chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def write_png(path, arr, color_type, bit_depth, interlace=False, plte=None, trns=None):
    """arr: [h, w, channels] of ints at bit_depth (packed for depths < 8)."""
    h, w = arr.shape[:2]
    ch = arr.shape[2]

    def rows_bytes(sub):
        out = b""
        for row in sub:
            if bit_depth == 16:
                raw = b"".join(struct.pack(">H", int(v)) for v in row.reshape(-1))
            elif bit_depth == 8:
                raw = bytes(int(v) for v in row.reshape(-1))
            else:
                vals = [int(v) for v in row.reshape(-1)]
                per = 8 // bit_depth
                raw = bytearray()
                for i in range(0, len(vals), per):
                    byte = 0
                    for k in range(per):
                        v = vals[i + k] if i + k < len(vals) else 0
                        byte |= v << (8 - bit_depth * (k + 1))
                    raw.append(byte)
                raw = bytes(raw)
            out += b"\x00" + raw
        return out

    if interlace:
        data = b""
        for (x0, y0, dx, dy) in ADAM7:
            sub = arr[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                data += rows_bytes(sub)
    else:
        data = rows_bytes(arr)
    png = b"\x89PNG\r\n\x1a\n"
    png += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0,
                                          1 if interlace else 0))
    if plte is not None:
        png += png_chunk(b"PLTE", bytes(plte))
    if trns is not None:
        png += png_chunk(b"tRNS", bytes(trns))
    png += png_chunk(b"IDAT", zlib.compress(data, 9))
    png += png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def main():
    os.chdir(HERE)
    base = pattern(40, 30)
    im = Image.fromarray(base)
    made = []

    def save(name, img, **kw):
        img.save(name, **kw)
        made.append(name)

    # JPEG variants
    save("rgb420_37x23.jpg", Image.fromarray(pattern(37, 23, 2)), quality=90)
    save("rgb444.jpg", im, quality=95, subsampling=0)
    save("progressive.jpg", im, quality=85, progressive=True)
    save("gray.jpg", im.convert("L"), quality=90)
    save("cmyk.jpg", im.convert("CMYK"), quality=92)
    for o in range(1, 9):
        save("exif_%d.jpg" % o, im, quality=90, exif=exif_with_orientation(o))
    # PNG variants Pillow can write
    save("exif_6.png", im, exif=exif_with_orientation(6))
    save("gray_alpha.png", im.convert("LA"))
    rgba = np.dstack([base, (np.arange(40)[None, :] * 6 + np.arange(30)[:, None]).astype(np.uint8)])
    save("rgba.png", Image.fromarray(rgba, "RGBA"))
    pal = im.convert("P", palette=Image.ADAPTIVE, colors=200)
    save("palette_trns.png", pal, transparency=3)
    save("palette4.png", im.convert("P", palette=Image.ADAPTIVE, colors=16), bits=4)
    save("gray1.png", im.convert("1"))
    save("wide_10000x1.png", Image.fromarray(pattern(10000, 1, 3)))
    save("tall_1x10000.png", Image.fromarray(pattern(1, 10000, 4)))
    save("one_1x1.png", Image.new("RGB", (1, 1), (12, 200, 99)))
    save("one_1x1.jpg", Image.new("RGB", (1, 1), (12, 200, 99)), quality=95)
    # PNG variants written by hand
    rng = np.random.default_rng(7)
    rgb16 = base.astype(np.uint32) * 256 + rng.integers(0, 256, base.shape)
    write_png("rgb16.png", rgb16, 2, 16); made.append("rgb16.png")
    rgba16 = np.dstack([rgb16, rng.integers(0, 65536, base.shape[:2])[..., None]])
    write_png("rgba16.png", rgba16, 6, 16); made.append("rgba16.png")
    gray16 = (base[..., 1:2].astype(np.uint32) * 257 + 100) % 65536
    write_png("gray16.png", gray16, 0, 16); made.append("gray16.png")
    write_png("interlaced.png", base, 2, 8, interlace=True); made.append("interlaced.png")
    g2 = (base[..., :1] // 64).astype(np.uint8)
    write_png("gray2_interlaced.png", g2, 0, 2, interlace=True); made.append("gray2_interlaced.png")
    # WebP variants
    save("lossy.webp", im, quality=80)
    save("lossless.webp", im, lossless=True)
    save("alpha.webp", Image.fromarray(rgba, "RGBA"), quality=80)
    save("exif_8.webp", im, quality=80, exif=exif_with_orientation(8))
    frames = [im, Image.fromarray(255 - base)]
    frames[0].save("animated.webp", save_all=True, append_images=frames[1:], duration=100,
                   loop=0, lossless=True)
    made.append("animated.webp")
    if os.path.exists("ycck.jpg"):
        made.append("ycck.jpg")

    # Expected pixels: Pillow's loader, with and without EXIF transposition.
    def fnv1a(b):
        hsh = 0xcbf29ce484222325
        for byte in b:
            hsh ^= byte
            hsh = (hsh * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        return "%016x" % hsh

    fixtures = ["images/" + n for n in sorted(os.listdir(os.path.join(DATA, "images")))
                if not n.endswith(".txt")]
    expected = {}
    for rel in ["images-extra/" + n for n in sorted(made)] + fixtures:
        path = os.path.join(DATA, rel)
        with Image.open(path) as src:
            mode = src.mode
            raw = src.convert("RGB")
            tr = ImageOps.exif_transpose(src).convert("RGB")
        a = np.asarray(raw).tobytes()
        e = {"mode": mode, "w": raw.width, "h": raw.height, "fnv": fnv1a(a),
             "w_exif": tr.width, "h_exif": tr.height, "fnv_exif": fnv1a(np.asarray(tr).tobytes()),
             "first": list(np.asarray(raw)[0, 0].tolist())}
        if mode in ("I", "I;16"):
            # Pillow clips 16-bit grey to 255 on convert("RGB") (mostly white); the library
            # keeps the high byte instead, as Pillow itself does for 16-bit colour. Record both.
            hb = (np.asarray(src_arr(path)) >> 8).astype(np.uint8)
            e["pil_fnv_clipped"] = e["fnv"]
            e["fnv"] = e["fnv_exif"] = fnv1a(np.repeat(hb[..., None], 3, -1).tobytes())
        expected[rel] = e
    with open("expected.json", "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


def src_arr(path):
    with Image.open(path) as s:
        return np.asarray(s).astype(np.uint32)


if __name__ == "__main__":
    main()
