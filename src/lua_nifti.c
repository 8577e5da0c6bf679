/*
 * lua_nifti.c -- the Lua face of nifti.c:
 *
 *   lv.load_nifti(path [, dtype [, volume]]) -> tensor [nz, ny, nx], info
 *
 * dtype is "f32" (default) or "f64"; volume (1-based, default 1) picks one
 * volume of a 4-D or higher image. info is a table of the header's fields:
 *
 *   version        1 or 2 (NIfTI-1, NIfTI-2)
 *   dims           {nx, ny, nz, ...}: dim[1..ndim], x first, as in the file
 *   pixdim         {dx, dy, dz, ...}: voxel sizes (xyz_units), time step
 *   datatype       "uint8", "int16", "float32", ... (datatype_code: DT_*)
 *   scl_slope, scl_inter, scaled   the scaling, and whether it was applied
 *   cal_min, cal_max, qform_code, sform_code, xyz_units, time_units
 *   orientation    {"Left-to-Right", "Posterior-to-Anterior",
 *                   "Inferior-to-Superior"}: what x, y, z run along (from
 *                   the sform, else the qform; absent when neither is set)
 *   volume, volumes   which volume was read (1-based), of how many
 *   descrip        the header's description
 *
 * Errors name the function and the file, then what is wrong:
 * "lv.load_nifti: x.nii: truncated: the header promises ...".
 * Not here: the format and nifticlib (nifti.c).
 */
#include "lua_common.h"
#include "nifti.h"

static void set_number(lua_State *L, const char *key, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, key);
}

static void set_integer(lua_State *L, const char *key, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, key);
}

static void set_string(lua_State *L, const char *key, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, key);
}

static void push_info(lua_State *L, const lv_nifti_info *in)
{
    lua_createtable(L, 0, 20);
    set_integer(L, "version", in->version);
    lua_createtable(L, in->ndim, 0);
    for (int i = 1; i <= in->ndim; i++) {
        lua_pushinteger(L, (lua_Integer)in->dim[i]);
        lua_rawseti(L, -2, i);
    }
    lua_setfield(L, -2, "dims");
    lua_createtable(L, in->ndim, 0);
    for (int i = 1; i <= in->ndim; i++) {
        lua_pushnumber(L, in->pixdim[i]);
        lua_rawseti(L, -2, i);
    }
    lua_setfield(L, -2, "pixdim");
    set_string(L, "datatype", lv_nifti_datatype_name(in->datatype));
    set_integer(L, "datatype_code", in->datatype);
    set_number(L, "scl_slope", in->scl_slope);
    set_number(L, "scl_inter", in->scl_inter);
    lua_pushboolean(L, in->scaled);
    lua_setfield(L, -2, "scaled");
    set_number(L, "cal_min", in->cal_min);
    set_number(L, "cal_max", in->cal_max);
    set_integer(L, "qform_code", in->qform_code);
    set_integer(L, "sform_code", in->sform_code);
    set_string(L, "xyz_units", in->xyz_units ? in->xyz_units : "");
    set_string(L, "time_units", in->time_units ? in->time_units : "");
    if (in->orientation[0][0]) {
        lua_createtable(L, 3, 0);
        for (int i = 0; i < 3; i++) {
            lua_pushstring(L, in->orientation[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "orientation");
    }
    set_integer(L, "volume", (lua_Integer)in->volume + 1);
    set_integer(L, "volumes", (lua_Integer)in->n_volumes);
    set_string(L, "descrip", in->descrip);
}

/* lv.load_nifti(path [, dtype [, volume]]) -> tensor, info */
static int nifti_load(lua_State *L)
{
    const char *path = lv_lua_check_path(L, 1);
    lv_dtype dtype = lv_lua_opt_dtype(L, 2, LV_DTYPE_F32);
    lua_Integer volume = luaL_optinteger(L, 3, 1);
    luaL_argcheck(L, volume >= 1, 3, "volume must be >= 1");
    lv_nifti_info info;
    lv_tensor *t = lv_nifti_read(path, dtype, (int64_t)(volume - 1), &info);
    if (!t)
        return lv_lua_raise_file(L, "lv.load_nifti", path);
    lv_lua_push_tensor(L, t, "lv.load_nifti");
    push_info(L, &info);
    return 2;
}

void lv_open_nifti(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"load_nifti", nifti_load},
        {NULL, NULL},
    };
    lv_lua_register(L, fns, 0);
}
