/*
 * nifti.c -- NIfTI images as tensors (see nifti.h): our header check,
 * nifticlib's reading, the conversion to f32/f64.
 *
 * A read goes: the first 540 bytes through zlib (gzread reads plain files
 * too) -> lv_nifti_parse_header, which trusts nothing -> nifticlib's
 * nifti_image_read(path, 0) for the header it will use -> the data size
 * the header promises checked against the file that holds the data ->
 * nifti_image_load (one volume) or nifti_image_load_bricks (the one
 * volume wanted of several; nifticlib swaps the bytes) -> lv_nifti_convert into a fresh tensor [nz, ny, nx].
 *
 * nifticlib reports failures by returning NULL or -1 and, at its default
 * debug level 1, by printing to stderr; the core never prints, so the
 * level is set to 0 before every call, and the checks before nifticlib
 * are what give the user a reason.
 *
 * Header layouts (byte offsets), from nifti1.h and nifti2.h:
 *
 *   NIfTI-1 (348 bytes)            NIfTI-2 (540 bytes)
 *     0 i32 sizeof_hdr = 348         0 i32 sizeof_hdr = 540
 *    40 i16 dim[8]                   4 char magic[8] "n+2\0\r\n\032\n"
 *    70 i16 datatype                12 i16 datatype
 *   108 f32 vox_offset              16 i64 dim[8]
 *   344 char magic[4] "n+1\0"      168 i64 vox_offset
 *
 * Not here: writing NIfTI, the Lua table of header fields (lua_nifti.c).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include <nifti2_io.h>

#include "nifti.h"

/* ---- bytes in either order -------------------------------------------- */

/* Reads an unsigned integer of n bytes at p, little- or big-endian. */
static uint64_t get_uint(const uint8_t *p, int n, int big_endian)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        int k = big_endian ? i : n - 1 - i;
        v = (v << 8) | p[k];
    }
    return v;
}

static int32_t get_i32(const uint8_t *p, int be)
{
    return (int32_t)(uint32_t)get_uint(p, 4, be);
}

static int16_t get_i16(const uint8_t *p, int be)
{
    return (int16_t)(uint16_t)get_uint(p, 2, be);
}

static int64_t get_i64(const uint8_t *p, int be)
{
    return (int64_t)get_uint(p, 8, be);
}

static float get_f32(const uint8_t *p, int be)
{
    uint32_t u = (uint32_t)get_uint(p, 4, be);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- datatypes --------------------------------------------------------- */

typedef struct datatype_entry {
    int code;
    const char *name;
    int nbyper;             /* 0: known but not read here */
} datatype_entry;

static const datatype_entry datatypes[] = {
    {LV_NIFTI_UINT8, "uint8", 1},
    {LV_NIFTI_INT16, "int16", 2},
    {LV_NIFTI_INT32, "int32", 4},
    {LV_NIFTI_FLOAT32, "float32", 4},
    {LV_NIFTI_FLOAT64, "float64", 8},
    {LV_NIFTI_INT8, "int8", 1},
    {LV_NIFTI_UINT16, "uint16", 2},
    {LV_NIFTI_UINT32, "uint32", 4},
    {LV_NIFTI_INT64, "int64", 8},
    {LV_NIFTI_UINT64, "uint64", 8},
    {1, "binary", 0},
    {32, "complex64", 0},
    {128, "rgb24", 0},
    {1536, "float128", 0},
    {1792, "complex128", 0},
    {2048, "complex256", 0},
    {2304, "rgba32", 0},
};

static const datatype_entry *find_datatype(int code)
{
    for (size_t i = 0; i < sizeof datatypes / sizeof datatypes[0]; i++)
        if (datatypes[i].code == code)
            return &datatypes[i];
    return NULL;
}

const char *lv_nifti_datatype_name(int datatype)
{
    const datatype_entry *e = find_datatype(datatype);
    return e ? e->name : "unknown";
}

/* ---- the header check -------------------------------------------------- */

int lv_nifti_parse_header(const uint8_t *buf, size_t len, lv_nifti_header *h)
{
    memset(h, 0, sizeof *h);
    if (len < LV_NIFTI1_HEADER_SIZE)
        return lv_error_set(0, "not a NIfTI file (%zu bytes, shorter than a "
                            "348-byte header)", len);

    /* The size field says the version and the byte order. */
    int32_t size_le = get_i32(buf, 0), size_be = get_i32(buf, 1);
    int be;
    if (size_le == LV_NIFTI1_HEADER_SIZE || size_le == LV_NIFTI2_HEADER_SIZE)
        be = 0;
    else if (size_be == LV_NIFTI1_HEADER_SIZE || size_be == LV_NIFTI2_HEADER_SIZE)
        be = 1;
    else
        return lv_error_set(0, "not a NIfTI file (header size field %d, "
                            "expected 348 or 540)", (int)size_le);
    int version = get_i32(buf, be) == LV_NIFTI1_HEADER_SIZE ? 1 : 2;
    h->version = version;
    h->big_endian = be;

    int64_t raw_dim[8];
    double vox_offset;
    if (version == 1) {
        const uint8_t *magic = buf + 344;
        if (memcmp(magic, "n+1\0", 4) == 0)
            h->single_file = 1;
        else if (memcmp(magic, "ni1\0", 4) == 0)
            h->single_file = 0;
        else
            return lv_error_set(0, "not a NIfTI file (no \"n+1\" or \"ni1\" "
                                "magic at byte 344: an ANALYZE 7.5 header?)");
        for (int i = 0; i < 8; i++)
            raw_dim[i] = get_i16(buf + 40 + 2 * i, be);
        h->datatype = get_i16(buf + 70, be);
        vox_offset = (double)get_f32(buf + 108, be);
    } else {
        if (len < LV_NIFTI2_HEADER_SIZE)
            return lv_error_set(0, "truncated NIfTI-2 header (%zu of 540 "
                                "bytes)", len);
        const uint8_t *magic = buf + 4;
        if (memcmp(magic, "n+2\0", 4) == 0)
            h->single_file = 1;
        else if (memcmp(magic, "ni2\0", 4) == 0)
            h->single_file = 0;
        else
            return lv_error_set(0, "not a NIfTI file (no \"n+2\" or \"ni2\" "
                                "magic at byte 4)");
        if (memcmp(magic + 4, "\r\n\032\n", 4) != 0)
            return lv_error_set(0, "damaged NIfTI-2 header (bytes 8-11 are "
                                "not \\r\\n\\032\\n: a text-mode transfer?)");
        for (int i = 0; i < 8; i++)
            raw_dim[i] = get_i64(buf + 16 + 8 * i, be);
        h->datatype = get_i16(buf + 12, be);
        vox_offset = (double)get_i64(buf + 168, be);
    }

    if (raw_dim[0] < 1 || raw_dim[0] > 7)
        return lv_error_set(0, "malformed NIfTI header: dim[0] = %lld (the "
                            "number of dims must be 1 to 7)",
                            (long long)raw_dim[0]);
    h->ndim = (int)raw_dim[0];
    int64_t nvox = 1;
    for (int i = 1; i < 8; i++) {
        if (i > h->ndim) {
            h->dim[i] = 1;
            continue;
        }
        if (raw_dim[i] < 1)
            return lv_error_set(0, "malformed NIfTI header: dim[%d] = %lld "
                                "(must be >= 1)", i, (long long)raw_dim[i]);
        if (__builtin_mul_overflow(nvox, raw_dim[i], &nvox))
            return lv_error_set(0, "malformed NIfTI header: the voxel count "
                                "overflows");
        h->dim[i] = raw_dim[i];
    }
    h->dim[0] = h->ndim;

    const datatype_entry *dt = find_datatype(h->datatype);
    if (!dt)
        return lv_error_set(0, "malformed NIfTI header: unknown datatype code "
                            "%d", h->datatype);
    if (dt->nbyper == 0)
        return lv_error_set(0, "unsupported datatype %s (code %d): only "
                            "integer and float32/float64 data are read",
                            dt->name, dt->code);
    h->nbyper = dt->nbyper;
    int64_t nbytes;
    if (__builtin_mul_overflow(nvox, (int64_t)h->nbyper, &nbytes))
        return lv_error_set(0, "malformed NIfTI header: the data size "
                            "overflows");
    h->nvox = nvox;
    h->volume_voxels = h->dim[1] * h->dim[2] * h->dim[3];
    h->n_volumes = nvox / h->volume_voxels;

    int hsize = version == 1 ? LV_NIFTI1_HEADER_SIZE : LV_NIFTI2_HEADER_SIZE;
    if (!(vox_offset >= 0) || vox_offset > 0x1p62 ||
        vox_offset != floor(vox_offset))
        return lv_error_set(0, "malformed NIfTI header: vox_offset %g is not "
                            "a byte offset", vox_offset);
    h->vox_offset = (int64_t)vox_offset;
    if (h->single_file && h->vox_offset < hsize)
        return lv_error_set(0, "malformed NIfTI header: vox_offset %lld lies "
                            "inside the %d-byte header",
                            (long long)h->vox_offset, hsize);
    return 0;
}

/* ---- conversion -------------------------------------------------------- */

/* One loop per stored type, the values read with memcpy, so `in` needs no
 * alignment; each value is converted in double and stored as dtype. */
#define CONVERT_LOOP(CT)                                                      \
    do {                                                                      \
        const uint8_t *src = in;                                              \
        for (int64_t i = 0; i < n; i++) {                                     \
            CT v;                                                             \
            memcpy(&v, src + (size_t)i * sizeof v, sizeof v);                 \
            double x = (double)v;                                             \
            if (apply_scaling)                                                \
                x = slope * x + inter;                                        \
            lv_store_double(out, dtype, i, x);                                \
        }                                                                     \
    } while (0)

int lv_nifti_convert(void *out, lv_dtype dtype, const void *in, int datatype,
                     int64_t n, int apply_scaling, double slope, double inter)
{
    switch (datatype) {
    case LV_NIFTI_UINT8: CONVERT_LOOP(uint8_t); break;
    case LV_NIFTI_INT8: CONVERT_LOOP(int8_t); break;
    case LV_NIFTI_INT16: CONVERT_LOOP(int16_t); break;
    case LV_NIFTI_UINT16: CONVERT_LOOP(uint16_t); break;
    case LV_NIFTI_INT32: CONVERT_LOOP(int32_t); break;
    case LV_NIFTI_UINT32: CONVERT_LOOP(uint32_t); break;
    case LV_NIFTI_INT64: CONVERT_LOOP(int64_t); break;
    case LV_NIFTI_UINT64: CONVERT_LOOP(uint64_t); break;
    case LV_NIFTI_FLOAT32: CONVERT_LOOP(float); break;
    case LV_NIFTI_FLOAT64: CONVERT_LOOP(double); break;
    default:
        return lv_error_set(0, "unsupported datatype %s (code %d)",
                            lv_nifti_datatype_name(datatype), datatype);
    }
    return 0;
}

/* ---- files ------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Checks that path is a regular file; *size gets its size. */
static int check_file(const char *path, int64_t *size)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return lv_error_set(0, "cannot open: %s", strerror(errno));
    if (S_ISDIR(st.st_mode))
        return lv_error_set(0, "is a directory, not a file");
    if (!S_ISREG(st.st_mode))
        return lv_error_set(0, "not a regular file");
    *size = (int64_t)st.st_size;
    return 0;
}

/* Whether the file starts with gzip's magic bytes; -1 when unreadable. */
static int is_gzip(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return lv_error_set(0, "cannot open: %s", strerror(errno));
    unsigned char m[2];
    size_t n = fread(m, 1, 2, f);
    fclose(f);
    return n == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

/* Reads up to 540 bytes from the start of path (gunzipped when it is
 * gzip) into buf; *len gets how many there were. */
static int read_head(const char *path, uint8_t *buf, size_t *len)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return lv_error_set(0, "cannot open: %s",
                            errno ? strerror(errno) : "out of memory");
    int n = gzread(gz, buf, LV_NIFTI2_HEADER_SIZE);
    int err = 0;
    const char *msg = n < 0 ? gzerror(gz, &err) : NULL;
    char why[128] = "";
    if (msg)
        snprintf(why, sizeof why, "%s", msg);
    gzclose(gz);
    if (n < 0)
        return lv_error_set(0, "cannot read the header: %s (a damaged gzip "
                            "file?)", why);
    *len = (size_t)n;
    return 0;
}

/* The largest expansion deflate achieves is a little over 1032:1: a gzip
 * file of S bytes cannot hold much more than that. */
#define GZIP_MAX_RATIO 1100

/* Checks the data nifticlib is about to read against the file holding it:
 * a plain file must hold every byte the header promises after the
 * offset; a gzip file must be large enough to possibly hold them. */
static int check_data_size(const nifti_image *nim, int64_t data_bytes)
{
    int64_t size = 0;
    if (check_file(nim->iname, &size) < 0)
        return -1;
    int gz = is_gzip(nim->iname);
    if (gz < 0)
        return -1;
    if (!gz) {
        int64_t end;
        if (__builtin_add_overflow(nim->iname_offset, data_bytes, &end) ||
            end > size)
            return lv_error_set(0, "truncated: the header promises %lld bytes "
                                "of data from byte %lld, the file holds %lld "
                                "bytes", (long long)data_bytes,
                                (long long)nim->iname_offset, (long long)size);
        return 0;
    }
    if (data_bytes / GZIP_MAX_RATIO > size)
        return lv_error_set(0, "the header promises %lld bytes of data, more "
                            "than a gzip file of %lld bytes can hold",
                            (long long)data_bytes, (long long)size);
    return 0;
}

static void fill_info(lv_nifti_info *info, const nifti_image *nim,
                      const lv_nifti_header *h, int64_t volume, int scaled)
{
    memset(info, 0, sizeof *info);
    info->version = h->version;
    info->ndim = h->ndim;
    for (int i = 0; i < 8; i++) {
        info->dim[i] = h->dim[i];
        info->pixdim[i] = nim->pixdim[i];
    }
    info->datatype = h->datatype;
    info->scl_slope = nim->scl_slope;
    info->scl_inter = nim->scl_inter;
    info->scaled = scaled;
    info->cal_min = nim->cal_min;
    info->cal_max = nim->cal_max;
    info->qform_code = nim->qform_code;
    info->sform_code = nim->sform_code;
    info->xyz_units = nifti_units_string(nim->xyz_units);
    info->time_units = nifti_units_string(nim->time_units);
    const nifti_dmat44 *m = nim->sform_code > 0 ? &nim->sto_xyz
                          : nim->qform_code > 0 ? &nim->qto_xyz : NULL;
    if (m) {
        int code[3];
        nifti_dmat44_to_orientation(*m, &code[0], &code[1], &code[2]);
        for (int i = 0; i < 3; i++)
            snprintf(info->orientation[i], sizeof info->orientation[i], "%s",
                     nifti_orientation_string(code[i]));
    }
    info->volume = volume;
    info->n_volumes = h->n_volumes;
    snprintf(info->descrip, sizeof info->descrip, "%.80s", nim->descrip);
}

lv_tensor *lv_nifti_read(const char *path, lv_dtype dtype, int64_t volume,
                         lv_nifti_info *info)
{
    nifti_set_debug_level(0);

    /* 1. our own look at the header */
    int64_t file_size = 0;
    if (check_file(path, &file_size) < 0)
        return NULL;
    int gz = is_gzip(path);
    if (gz < 0)
        return NULL;
    if (gz && !ends_with(path, ".gz")) {
        lv_error_set(0, "the file is gzip-compressed but its name does not "
                     "end in .gz (nifticlib goes by the name)");
        return NULL;
    }
    uint8_t head[LV_NIFTI2_HEADER_SIZE];
    size_t head_len = 0;
    lv_nifti_header h;
    if (read_head(path, head, &head_len) < 0 ||
        lv_nifti_parse_header(head, head_len, &h) < 0)
        return NULL;
    if (volume < 0 || volume >= h.n_volumes) {
        lv_error_set(0, "volume %lld is out of range: the image holds %lld "
                     "volume%s of %lldx%lldx%lld", (long long)volume + 1,
                     (long long)h.n_volumes, h.n_volumes == 1 ? "" : "s",
                     (long long)h.dim[1], (long long)h.dim[2],
                     (long long)h.dim[3]);
        return NULL;
    }

    /* 2. nifticlib's header, checked against ours */
    nifti_image *nim = nifti_image_read(path, 0);
    if (!nim) {
        lv_error_set(0, "nifticlib cannot read this header (is the name "
                     "ending in .nii, .nii.gz or .hdr?)");
        return NULL;
    }
    lv_tensor *t = NULL;
    nifti_brick_list bricks = {0, 0, NULL};
    if (nim->nvox != h.nvox || nim->datatype != h.datatype ||
        nim->nbyper != h.nbyper) {
        lv_error_set(0, "nifticlib reads this header differently (%lld voxels "
                     "of %s, against %lld of %s): not read",
                     (long long)nim->nvox, lv_nifti_datatype_name(nim->datatype),
                     (long long)h.nvox, lv_nifti_datatype_name(h.datatype));
        goto done;
    }

    /* 3. the data: every volume must be there, only one is read */
    if (check_data_size(nim, h.nvox * h.nbyper) < 0)
        goto done;
    int64_t shape[3] = {h.dim[3], h.dim[2], h.dim[1]};
    if (lv_shape_check("load_nifti", 3, shape) < 0)
        goto done;
    /* One volume: the whole image (nifti_image_load; the brick reader
     * wants three dims); else the one brick asked for. */
    const void *data;
    if (h.n_volumes == 1) {
        if (nifti_image_load(nim) < 0 || !nim->data) {
            lv_error_set(0, "cannot read the image data (truncated or damaged "
                         "file, or out of memory)");
            goto done;
        }
        data = nim->data;
    } else {
        const int64_t blist[1] = {volume};
        if (nifti_image_load_bricks(nim, 1, blist, &bricks) < 0 ||
            bricks.nbricks != 1 || !bricks.bricks || !bricks.bricks[0]) {
            lv_error_set(0, "cannot read the image data (truncated or damaged "
                         "file, or out of memory)");
            goto done;
        }
        if (bricks.bsize != h.volume_voxels * h.nbyper) {
            lv_error_set(0, "nifticlib read %lld bytes for a volume of %lld",
                         (long long)bricks.bsize,
                         (long long)(h.volume_voxels * h.nbyper));
            goto done;
        }
        data = bricks.bricks[0];
    }

    /* 4. the tensor */
    double slope = nim->scl_slope, inter = nim->scl_inter;
    int scaled = isfinite(slope) && slope != 0 && isfinite(inter) &&
                 !(slope == 1 && inter == 0);
    t = lv_tensor_empty(dtype, 3, shape);
    if (!t)
        goto done;
    if (lv_nifti_convert(lv_tensor_data(t), dtype, data, h.datatype,
                         h.volume_voxels, scaled, slope, inter) < 0) {
        lv_tensor_release(t);
        t = NULL;
        goto done;
    }
    if (info)
        fill_info(info, nim, &h, volume, scaled);

done:
    if (bricks.bricks)
        nifti_free_NBL(&bricks);
    nifti_image_free(nim);
    return t;
}
