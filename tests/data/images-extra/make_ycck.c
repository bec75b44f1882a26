/* make_ycck.c — writes ycck.jpg, a 40x30 Adobe YCCK JPEG (what Photoshop writes for CMYK),
 * which Pillow cannot produce. Build and run from this directory:
 *   cc make_ycck.c -ljpeg -o /tmp/make_ycck && /tmp/make_ycck
 * then run make_images.py to record Pillow's decode of it in expected.json. */
#include <stdio.h>
#include <jpeglib.h>

int main(void) {
    enum { W = 40, H = 30 };
    static unsigned char px[H][W * 4];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            unsigned char *p = &px[y][x * 4];
            p[0] = (unsigned char)(x * 6);           /* stored values are Adobe-inverted CMYK */
            p[1] = (unsigned char)(y * 8);
            p[2] = (unsigned char)((x + y) * 3);
            p[3] = (unsigned char)(255 - (x * y) % 200);
        }
    FILE *f = fopen("ycck.jpg", "wb");
    if (!f) return 1;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = W;
    c.image_height = H;
    c.input_components = 4;
    c.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, JCS_YCCK);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < H) {
        JSAMPROW row = px[c.next_scanline];
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
    return 0;
}
