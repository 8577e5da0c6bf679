/*
 * nifti.h -- NIfTI-1 and NIfTI-2 brain images (.nii, .nii.gz, .hdr/.img)
 * as tensors, without Lua. The reading is nifticlib's (Debian's
 * libnifti2-dev: nifti2_io, which reads both versions and gunzips through
 * its znzlib); what is added here is what a toolkit needs around it:
 *
 *   - the header is checked first, by a parser of our own that takes a
 *     buffer and a length and trusts nothing in it (lv_nifti_parse_header,
 *     the part meant for fuzzing), so that a file that is not NIfTI, or
 *     is malformed, gets an error that says what is wrong instead of
 *     nifticlib's silent NULL;
 *   - the data a header promises is checked against the bytes the file can
 *     hold before anything is allocated for it;
 *   - any stored datatype (u8, i8, i16, u16, i32, u32, i64, u64, f32, f64)
 *     becomes an f32 or f64 tensor, with scl_slope / scl_inter applied when
 *     the header sets them (NIfTI-1 §scl_slope: y = slope x + inter, unless
 *     slope is 0);
 *   - nifticlib never prints (its debug level is set to 0).
 *
 * Layout. NIfTI stores x fastest, then y, then z (then t, ...). A volume
 * comes back as a contiguous tensor [nz, ny, nx] (missing dims are 1): its
 * first index is the slice, so that, for an image in the usual RAS/LAS
 * orientation (see lv_nifti_info.orientation), t[k] is the k-th axial
 * slice, [ny, nx]. Images with more than three dims (time series, ...) hold
 * several volumes; one of them is read.
 *
 * Not read: complex, RGB and 128-bit float data (an error says so),
 * ANALYZE 7.5 headers without the NIfTI magic, NIfTI-ASCII.
 *
 * Errors: -1 or NULL with a message in lv_error (error.h) that says what
 * is wrong ("not a NIfTI file (...)", "truncated: ..."); the caller puts
 * the file's name in front, as src/lua_io.c does.
 */
#ifndef LV_NIFTI_H
#define LV_NIFTI_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

/* NIfTI datatype codes (nifti1.h's DT_*), the ones this file knows. */
#define LV_NIFTI_UINT8 2
#define LV_NIFTI_INT16 4
#define LV_NIFTI_INT32 8
#define LV_NIFTI_FLOAT32 16
#define LV_NIFTI_FLOAT64 64
#define LV_NIFTI_INT8 256
#define LV_NIFTI_UINT16 512
#define LV_NIFTI_UINT32 768
#define LV_NIFTI_INT64 1024
#define LV_NIFTI_UINT64 1280

/* The first bytes of a file, enough for either header version. */
#define LV_NIFTI1_HEADER_SIZE 348
#define LV_NIFTI2_HEADER_SIZE 540

/* What lv_nifti_parse_header finds in a header. */
typedef struct lv_nifti_header {
    int version;                /* 1 or 2 */
    int big_endian;             /* the byte order of the header and data */
    int single_file;            /* "n+1"/"n+2" (.nii), not "ni1" (.hdr/.img) */
    int ndim;                   /* dim[0], 1..7 */
    int64_t dim[8];             /* dim[1..ndim] >= 1; the others 1 */
    int datatype;               /* a code this file can read */
    int nbyper;                 /* bytes per value */
    int64_t vox_offset;         /* where the data starts (in its file) */
    int64_t nvox;               /* product of dim[1..ndim] */
    int64_t volume_voxels;      /* nx ny nz */
    int64_t n_volumes;          /* nvox / volume_voxels */
} lv_nifti_header;

/* Parses and checks a NIfTI-1 or NIfTI-2 header at the start of buf
 * (len bytes: at least 348, or 540 for NIfTI-2), either byte order.
 * Checks: the size field, the magic, dim[0] in 1..7, every used dim >= 1,
 * no overflow in the voxel count and byte size, a readable datatype, a
 * vox_offset that is finite, whole and not inside the header. Returns 0 and
 * fills *h, or -1 with lv_error set. Reads nothing past len. */
int lv_nifti_parse_header(const uint8_t *buf, size_t len, lv_nifti_header *h);

/* Name of a datatype code ("int16", "float32", "complex64", ...), or
 * "unknown". */
const char *lv_nifti_datatype_name(int datatype);

/* Converts n stored values of `datatype` (native byte order) to dtype,
 * y = slope x + inter when apply_scaling. out must hold n values. */
int lv_nifti_convert(void *out, lv_dtype dtype, const void *in, int datatype,
                     int64_t n, int apply_scaling, double slope, double inter);

/* What a read returns beside the tensor. */
typedef struct lv_nifti_info {
    int version;                /* 1 or 2 */
    int ndim;                   /* dim[0] */
    int64_t dim[8];             /* dim[1..ndim] */
    double pixdim[8];           /* pixdim[1..ndim]: voxel sizes, time step */
    int datatype;               /* the stored datatype code */
    double scl_slope, scl_inter;/* as stored (slope 0: none) */
    int scaled;                 /* whether they were applied */
    double cal_min, cal_max;
    int qform_code, sform_code;
    const char *xyz_units;      /* "mm", "micron", ... (static strings) */
    const char *time_units;     /* "s", "ms", ... */
    /* the axis each array index runs along, from the sform (else the
     * qform): "Left-to-Right", ... (for dims x, y, z); "" when neither is
     * set */
    char orientation[3][24];
    int64_t volume;             /* the volume read, 0-based */
    int64_t n_volumes;
    char descrip[81];
} lv_nifti_info;

/* Reads volume `volume` (0-based) of the image at path as a new
 * contiguous tensor [nz, ny, nx] of dtype, and fills *info when info is
 * not NULL. Returns a new reference, or NULL with lv_error set (a file
 * that is missing, not NIfTI, malformed, truncated, of an unsupported
 * datatype, or a volume out of range). */
lv_tensor *lv_nifti_read(const char *path, lv_dtype dtype, int64_t volume,
                         lv_nifti_info *info);

#endif
