/* image_probe.c - identifies an image file, validates the parts of it
 * that decoders trust, and reads its size before anything is decoded.
 *
 * Why: stb_image 2.27 (Debian 12) trusts a JPEG Huffman table's code counts
 * and writes past its arrays when they sum above 256 (fixed upstream in
 * 2.28), and every decoder allocates what the header declares, so an
 * 855-byte JPEG can ask for gigabytes. Checking the header first refuses
 * both before a decoder runs, whichever decoder is built. */
#include <string.h>

#include "io/image_probe.h"
#include "stb_impl.h" /* KDC__IMAGE_MAX_SIDE */

const char *kdc__image_format_name(kdc__image_format format)
{
    switch (format) {
    case KDC__IMAGE_JPEG: return "JPEG";
    case KDC__IMAGE_PNG: return "PNG";
    case KDC__IMAGE_BMP: return "BMP";
    }
    return "image";
}

static uint32_t kdc__be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t kdc__le32p(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static kdc_status kdc__bad_jpeg(const char *path, size_t at, const char *what)
{
    return kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: corrupt JPEG: %s (at byte %zu)",
                     path, what, at);
}

/* One DHT segment (payload p[0..n)): tables of class 0..1, id 0..3, with
 * 16 code counts summing to at most 256 and that many symbols. Marks each
 * table in defined[class][id]. */
static kdc_status kdc__jpeg_dht(const char *path, size_t at, const unsigned char *p, size_t n,
                                unsigned char defined[2][4])
{
    size_t pos = 0;
    while (pos < n) {
        unsigned sum = 0;
        if (n - pos < 17)
            return kdc__bad_jpeg(path, at, "Huffman table segment ends inside a table header");
        if (p[pos] >> 4 > 1 || (p[pos] & 15) > 3)
            return kdc__bad_jpeg(path, at, "Huffman table class or id out of range");
        for (int i = 1; i <= 16; i++)
            sum += p[pos + i];
        if (sum > 256)
            return kdc__bad_jpeg(path, at, "Huffman table declares more than 256 codes");
        if (n - pos - 17 < sum)
            return kdc__bad_jpeg(path, at, "Huffman table runs past its segment");
        defined[p[pos] >> 4][p[pos] & 15] = 1;
        pos += 17 + sum;
    }
    return KDC_OK;
}

/* One DQT segment: tables of precision 0..1 and id 0..3, 64 entries each. */
static kdc_status kdc__jpeg_dqt(const char *path, size_t at, const unsigned char *p, size_t n)
{
    size_t pos = 0;
    while (pos < n) {
        size_t need = 1 + 64 * (size_t)((p[pos] >> 4) + 1);
        if (p[pos] >> 4 > 1 || (p[pos] & 15) > 3)
            return kdc__bad_jpeg(path, at, "quantisation table precision or id out of range");
        if (n - pos < need)
            return kdc__bad_jpeg(path, at, "quantisation table runs past its segment");
        pos += need;
    }
    return KDC_OK;
}

/* A frame header (SOFn): 8-bit or 12-bit samples, 1, 3 or 4 components
 * with sampling factors 1..4 and table ids 0..3, a non-zero size. */
static kdc_status kdc__jpeg_sof(const char *path, size_t at, const unsigned char *p, size_t n,
                                int *w, int *h, int *ncomp, unsigned char ids[4])
{
    if (n < 6)
        return kdc__bad_jpeg(path, at, "frame header too short");
    int nf = p[5];
    if (nf != 1 && nf != 3 && nf != 4)
        return kdc__bad_jpeg(path, at, "frame has a component count other than 1, 3 or 4");
    if (n != 6 + 3 * (size_t)nf)
        return kdc__bad_jpeg(path, at, "frame header length does not match its component count");
    if (p[0] != 8 && p[0] != 12)
        return kdc__bad_jpeg(path, at, "sample precision is not 8 or 12 bits");
    *h = p[1] << 8 | p[2];
    *w = p[3] << 8 | p[4];
    if (*w == 0 || *h == 0)
        return kdc__bad_jpeg(path, at, "frame width or height is 0");
    for (int c = 0; c < nf; c++) {
        const unsigned char *q = p + 6 + 3 * c;
        int hs = q[1] >> 4, vs = q[1] & 15;
        if (hs < 1 || hs > 4 || vs < 1 || vs > 4)
            return kdc__bad_jpeg(path, at, "component sampling factor not in 1..4");
        if (q[2] > 3)
            return kdc__bad_jpeg(path, at, "component quantisation table id above 3");
        ids[c] = q[0];
    }
    *ncomp = nf;
    return KDC_OK;
}

/* A scan header (SOS): 1..4 components of the frame, table ids 0..3, and
 * every Huffman table the scan decodes with defined before it (a decoder
 * may otherwise read a table it never filled: stb_image 2.27 indexes out of
 * its arrays). A progressive DC scan uses DC tables (the first pass only),
 * an AC scan AC tables; other frames use both. Only checked where stb_image
 * decodes JPEG (`make JPEG=stb`): libjpeg-turbo checks its tables itself and
 * supplies the standard ones when a file has none (Motion-JPEG frames), as
 * Pillow's decoding does. Arithmetic-coded scans (huffman == 0) use none. */
static kdc_status kdc__jpeg_sos(const char *path, size_t at, const unsigned char *p, size_t n,
                                int ncomp, const unsigned char ids[4], int progressive,
                                int huffman, unsigned char defined[2][4])
{
#ifdef KDC_HAVE_LIBJPEG
    huffman = 0;
#endif
    if (ncomp == 0)
        return kdc__bad_jpeg(path, at, "scan before the frame header");
    if (n < 1 || p[0] < 1 || p[0] > ncomp || n != 4 + 2 * (size_t)p[0])
        return kdc__bad_jpeg(path, at, "scan header has a bad component count or length");
    int ns = p[0], ss = p[1 + 2 * ns], ah = p[3 + 2 * ns] >> 4;
    int use_dc = !progressive || (ss == 0 && ah == 0), use_ac = !progressive || ss > 0;
    for (int c = 0; c < ns; c++) {
        const unsigned char *q = p + 1 + 2 * c;
        int found = 0;
        for (int k = 0; k < ncomp; k++)
            found |= ids[k] == q[0];
        if (!found)
            return kdc__bad_jpeg(path, at, "scan names a component the frame does not have");
        if (q[1] >> 4 > 3 || (q[1] & 15) > 3)
            return kdc__bad_jpeg(path, at, "scan Huffman table id above 3");
        if (huffman && ((use_dc && !defined[0][q[1] >> 4]) || (use_ac && !defined[1][q[1] & 15])))
            return kdc__bad_jpeg(path, at, "scan uses a Huffman table that was never defined");
    }
    return KDC_OK;
}

/* Walks the marker segments from SOI to EOI (junk between segments is
 * skipped, as decoders do) and validates the ones decoders trust. */
static kdc_status kdc__jpeg_walk(const char *path, const unsigned char *b, size_t n, int *w,
                                 int *h)
{
    size_t i = 2; /* after SOI */
    int ncomp = 0, scans = 0, progressive = 0, huffman = 1;
    unsigned char ids[4] = {0}, defined[2][4] = {{0}};
    kdc_status st;
    while (i < n) {
        if (b[i] != 0xFF) { /* junk: resynchronise on the next 0xFF */
            i++;
            continue;
        }
        while (i < n && b[i] == 0xFF) /* fill bytes */
            i++;
        if (i >= n)
            break;
        size_t at = i - 1;
        unsigned m = b[i++];
        if (m == 0xD9) {
            if (!ncomp || !scans)
                return kdc__bad_jpeg(path, at, ncomp ? "no scan before the end of image"
                                                      : "no frame header before the end of image");
            return KDC_OK;
        }
        if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7))
            continue; /* no payload */
        if (n - i < 2)
            break;
        size_t seglen = (size_t)b[i] << 8 | b[i + 1];
        if (seglen < 2)
            return kdc__bad_jpeg(path, at, "segment length below 2");
        if (seglen > n - i)
            break;
        const unsigned char *p = b + i + 2;
        size_t plen = seglen - 2;
        st = KDC_OK;
        if (m == 0xC4)
            st = kdc__jpeg_dht(path, at, p, plen, defined);
        else if (m == 0xDB)
            st = kdc__jpeg_dqt(path, at, p, plen);
        else if (m == 0xDD && plen != 2)
            st = kdc__bad_jpeg(path, at, "restart interval segment length is not 4");
        else if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            if (ncomp)
                st = kdc__bad_jpeg(path, at, "a second frame header");
            else
                st = kdc__jpeg_sof(path, at, p, plen, w, h, &ncomp, ids);
            progressive = (m & 3) == 2; /* SOF2, SOF6, SOF10, SOF14 */
            huffman = m < 0xC8;           /* SOF9..SOF15: arithmetic coding */
        } else if (m == 0xDA) {
            st = kdc__jpeg_sos(path, at, p, plen, ncomp, ids, progressive, huffman, defined);
            scans++;
        }
        if (st != KDC_OK)
            return st;
        i += seglen;
        if (m == 0xDA) { /* entropy-coded data up to the next real marker */
            while (i + 1 < n && !(b[i] == 0xFF && b[i + 1] != 0x00 &&
                                  !(b[i + 1] >= 0xD0 && b[i + 1] <= 0xD7)))
                i++;
            if (i + 1 >= n)
                break;
        }
    }
    return kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: truncated JPEG (no end of image "
                     "marker)", path);
}

/* PNG chunks from IHDR to IEND: each must fit in the file (a chunk that
 * claims more makes stb_image grow its IDAT buffer towards the claim, up to
 * 2 GB, before it finds the data missing), and an empty first IDAT is
 * refused, as stb_image 2.27 then offsets a NULL pointer (undefined
 * behaviour; encoders do not write empty IDAT chunks). Checksums and the
 * order of other chunks are left to the decoder. */
static kdc_status kdc__png_chunks(const char *path, const unsigned char *b, size_t n)
{
    size_t i = 8;
    int idat = 0;
    for (;;) {
        if (n - i < 12)
            return kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: truncated PNG (no IEND "
                             "chunk)", path);
        uint32_t len = kdc__be32(b + i);
        if (len > 0x7FFFFFFFu)
            return kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: corrupt PNG: chunk "
                             "length above 2^31 - 1 (at byte %zu)", path, i);
        if ((size_t)len > n - i - 12)
            return kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: truncated PNG (a chunk "
                             "of %u bytes at byte %zu runs past the end of the file)", path,
                             (unsigned)len, i);
        if (!memcmp(b + i + 4, "IDAT", 4)) {
            if (len == 0 && !idat)
                return kdc__fail(KDC_ERR_UNSUPPORTED, "%s: not a readable image: PNG whose "
                                 "first IDAT chunk is empty (at byte %zu) is not supported",
                                 path, i);
            idat = 1;
        }
        if (!memcmp(b + i + 4, "IEND", 4))
            return KDC_OK;
        i += (size_t)len + 12;
    }
}

/* BMP: the size from a BITMAPCOREHEADER (OS/2) or BITMAPINFOHEADER. */
static kdc_status kdc__bmp_size(const char *path, const unsigned char *b, size_t n, int64_t *w,
                                int64_t *h)
{
    uint32_t hsize;
    if (n < 26)
        return kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: BMP header truncated", path);
    hsize = kdc__le32p(b + 14);
    if (hsize == 12) {
        *w = b[18] | b[19] << 8;
        *h = b[20] | b[21] << 8;
    } else {
        int32_t sw, sh;
        uint32_t u = kdc__le32p(b + 18);
        memcpy(&sw, &u, 4);
        u = kdc__le32p(b + 22);
        memcpy(&sh, &u, 4);
        *w = sw;
        *h = sh < 0 ? -(int64_t)sh : sh; /* negative: rows top to bottom */
    }
    return KDC_OK;
}

/* Names formats we recognise but do not read; NULL if unknown. */
static const char *kdc__other_format(const unsigned char *b, size_t n)
{
    if (n >= 4 && !memcmp(b, "GIF8", 4))
        return "GIF";
    if (n >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7' &&
        (b[2] == ' ' || b[2] == '\n' || b[2] == '\r' || b[2] == '\t'))
        return "PNM (PBM/PGM/PPM)";
    if (n >= 4 && !memcmp(b, "8BPS", 4))
        return "PSD";
    if (n >= 2 && b[0] == '#' && b[1] == '?')
        return "Radiance HDR";
    if (n >= 4 && (!memcmp(b, "II*\0", 4) || !memcmp(b, "MM\0*", 4)))
        return "TIFF";
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4))
        return "WebP";
    if (n >= 12 && !memcmp(b + 4, "ftyp", 4))
        return "HEIF/AVIF";
    if (n >= 4 && b[0] == 0x53 && b[1] == 0x80 && b[2] == 0xF6 && b[3] == 0x34)
        return "Softimage PIC";
    return NULL;
}

kdc_status kdc__image_probe(const char *path, const unsigned char *b, size_t n,
                            int64_t max_pixels, kdc__image_format *format, int *w, int *h)
{
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    int64_t ww = 0, hh = 0;
    kdc_status st;
    const char *other;

    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) {
        int jw = 0, jh = 0;
        *format = KDC__IMAGE_JPEG;
        if ((st = kdc__jpeg_walk(path, b, n, &jw, &jh)) != KDC_OK)
            return st;
        ww = jw;
        hh = jh;
    } else if (n >= 8 && !memcmp(b, png_sig, 8)) {
        *format = KDC__IMAGE_PNG;
        if (n < 8 + 8 + 13 || kdc__be32(b + 8) != 13 || memcmp(b + 12, "IHDR", 4))
            return kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: PNG without an IHDR "
                             "header chunk", path);
        ww = kdc__be32(b + 16);
        hh = kdc__be32(b + 20);
        if ((st = kdc__png_chunks(path, b, n)) != KDC_OK)
            return st;
    } else if (n >= 2 && b[0] == 'B' && b[1] == 'M') {
        *format = KDC__IMAGE_BMP;
        if ((st = kdc__bmp_size(path, b, n, &ww, &hh)) != KDC_OK)
            return st;
    } else if ((other = kdc__other_format(b, n))) {
        return kdc__fail(KDC_ERR_UNSUPPORTED, "%s: not a readable image: %s files are not "
                         "supported (JPEG, PNG and BMP are)", path, other);
    } else {
        return kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: not a JPEG, PNG or BMP file "
                         "(unknown signature)", path);
    }
    if (ww < 1 || hh < 1 || ww > KDC__IMAGE_MAX_SIDE || hh > KDC__IMAGE_MAX_SIDE)
        return kdc__fail(KDC_ERR_FORMAT, "%s: not a readable image: %s declares %lldx%lld "
                         "pixels; each side must be in 1..%d", path,
                         kdc__image_format_name(*format), (long long)ww, (long long)hh,
                         KDC__IMAGE_MAX_SIDE);
    if (ww * hh > max_pixels)
        return kdc__fail(KDC_ERR_UNSUPPORTED, "%s: %s image of %lldx%lld = %lld pixels is above "
                         "the limit of %lld pixels (a decompression bomb?); raise it with "
                         "--max-pixels or kdc_image_options.max_pixels", path,
                         kdc__image_format_name(*format), (long long)ww, (long long)hh,
                         (long long)(ww * hh), (long long)max_pixels);
    *w = (int)ww;
    *h = (int)hh;
    return KDC_OK;
}
