/*
 * lua_rng.c -- the Lua face of rng.c: seeding, generator objects, and the
 * random tensor constructors.
 *
 *   lv.manual_seed(n)  lv.seed()  lv.get_rng_state()  lv.set_rng_state(s)
 *   lv.Generator([seed])   g:manual_seed(n)  g:seed()  g:get_state()
 *                          g:set_state(s)    tostring(g)
 *   lv.rand(shape [, dtype] [, gen])       lv.randn(shape [, dtype] [, gen])
 *   lv.bernoulli(p [, gen])                (p a tensor of probabilities)
 *   lv.bernoulli(shape, p [, dtype] [, gen])
 *   lv.rand_like(x [, gen]), lv.randn_like(x [, gen])   (also x:rand_like())
 *   lv._philox(ctr, key)                   (known-answer tests only)
 *
 * Every function without a generator argument draws from the default one
 * (lv_generator_default). A generator is a plain (seed, offset) pair held
 * in a userdata; it owns no other memory, so it needs no __gc.
 *
 * Seeds and offsets are unsigned 64-bit in C and Lua integers here: the
 * bits are kept, so a seed above 2^63 - 1 reads back as a negative integer
 * and round-trips exactly through manual_seed / set_state.
 *
 * Not here: the generator and fills themselves (rng.c).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lua_common.h"
#include "rng.h"



/* ---- arguments --------------------------------------------------------- */

/* Reads the number at idx as 64 bits: any Lua integer (negative ones keep
 * their two's-complement bits), or a float with an integral value in
 * [-2^63, 2^64) (so lv.manual_seed(2^63) works). Returns 0 otherwise. */
static int to_u64(lua_State *L, int idx, uint64_t *out)
{
    if (lua_isinteger(L, idx)) {
        *out = (uint64_t)lua_tointeger(L, idx);
        return 1;
    }
    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
    double d = (double)lua_tonumber(L, idx);
    if (!(d == floor(d) && d >= -0x1p63 && d < 0x1p64))   /* NaN fails too */
        return 0;
    *out = d >= 0x1p63 ? (uint64_t)d : (uint64_t)(int64_t)d;
    return 1;
}

static uint64_t check_seed(lua_State *L, int idx)
{
    uint64_t seed = 0;    /* luaL_argerror does not return; gcc can't tell */
    if (lua_type(L, idx) != LUA_TNUMBER)
        luaL_typeerror(L, idx, "integer");
    if (!to_u64(L, idx, &seed))
        luaL_argerror(L, idx, "seed must be an integer");
    return seed;
}

/* A {seed = , offset = } table at idx, both read before anything changes. */
static void check_state(lua_State *L, int idx, uint64_t *seed,
                        uint64_t *offset)
{
    *seed = *offset = 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "seed");
    if (!to_u64(L, -1, seed))
        luaL_argerror(L, idx, "field 'seed' must be an integer");
    lua_getfield(L, idx, "offset");
    if (!to_u64(L, -1, offset))
        luaL_argerror(L, idx, "field 'offset' must be an integer");
    lua_pop(L, 2);
}

static void push_state(lua_State *L, const lv_generator *g)
{
    uint64_t seed, offset;
    lv_generator_get_state(g, &seed, &offset);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)seed);
    lua_setfield(L, -2, "seed");
    lua_pushinteger(L, (lua_Integer)offset);
    lua_setfield(L, -2, "offset");
}

/* An optional generator at idx: the default one when nil or absent. */
static lv_generator *opt_generator(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return lv_generator_default();
    return luaL_checkudata(L, idx, LV_GENERATOR_MT);
}

/* The optional tail "[dtype] [gen]" starting at idx. The dtype may be left
 * out with the generator still given (rand(shape, gen)). */
static lv_generator *opt_dtype_generator(lua_State *L, int idx,
                                         lv_dtype *dtype)
{
    lv_generator *g = luaL_testudata(L, idx, LV_GENERATOR_MT);
    if (g) {
        *dtype = LV_DTYPE_F32;
        return g;
    }
    *dtype = lv_lua_opt_dtype(L, idx, LV_DTYPE_F32);
    return opt_generator(L, idx + 1);
}

static int is_probability(double p) { return p >= 0.0 && p <= 1.0; }

/* ---- seeding and state of the default generator ----------------------- */

static int rng_manual_seed(lua_State *L)
{
    lv_generator_seed(lv_generator_default(), check_seed(L, 1));
    return 0;
}

static int rng_seed(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lv_generator_default()->seed);
    return 1;
}

static int rng_get_rng_state(lua_State *L)
{
    push_state(L, lv_generator_default());
    return 1;
}

static int rng_set_rng_state(lua_State *L)
{
    uint64_t seed, offset;
    check_state(L, 1, &seed, &offset);
    lv_generator_set_state(lv_generator_default(), seed, offset);
    return 0;
}

/* ---- Generator objects -------------------------------------------------- */

/* lv.Generator([seed]): a stream of its own, independent of the default
 * one; without a seed it starts where the default generator starts. */
static int rng_generator_new(lua_State *L)
{
    uint64_t seed = lua_isnoneornil(L, 1) ? LV_GENERATOR_DEFAULT_SEED
                                          : check_seed(L, 1);
    lv_generator *g = lua_newuserdatauv(L, sizeof *g, 0);
    memset(g, 0, sizeof *g);
    lv_generator_seed(g, seed);
    luaL_setmetatable(L, LV_GENERATOR_MT);
    return 1;
}

static lv_generator *check_generator(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, LV_GENERATOR_MT);
}

/* g:manual_seed(n) returns g, so that lv.Generator():manual_seed(1) reads
 * naturally. */
static int generator_manual_seed(lua_State *L)
{
    lv_generator *g = check_generator(L, 1);
    lv_generator_seed(g, check_seed(L, 2));
    lua_settop(L, 1);
    return 1;
}

static int generator_seed(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_generator(L, 1)->seed);
    return 1;
}

static int generator_get_state(lua_State *L)
{
    push_state(L, check_generator(L, 1));
    return 1;
}

static int generator_set_state(lua_State *L)
{
    lv_generator *g = check_generator(L, 1);
    uint64_t seed, offset;
    check_state(L, 2, &seed, &offset);
    lv_generator_set_state(g, seed, offset);
    return 0;
}

static int generator_tostring(lua_State *L)
{
    const lv_generator *g = check_generator(L, 1);
    char buf[80];
    snprintf(buf, sizeof buf, "Generator(seed=%" PRIu64 ", offset=%" PRIu64
             ")", g->seed, g->offset);
    lua_pushstring(L, buf);
    return 1;
}

/* ---- random tensors ------------------------------------------------------ */

typedef enum fill_kind { FILL_UNIFORM, FILL_NORMAL } fill_kind;

/* Makes a tensor of the given geometry, fills it, pushes it. Arguments are
 * all checked by now; the only failure left is allocation, which
 * lv_lua_push_tensor raises. The generator advances only on success. */
static int push_filled(lua_State *L, const char *fname, fill_kind kind,
                       lv_generator *g, lv_dtype dtype, int ndim,
                       const int64_t *shape)
{
    lv_tensor *t = lv_tensor_empty(dtype, ndim, shape);
    if (t) {
        int64_t n = lv_tensor_numel(t);
        if (kind == FILL_UNIFORM)
            lv_rng_uniform(g, dtype, lv_tensor_data(t), n);
        else
            lv_rng_normal(g, dtype, lv_tensor_data(t), n, 0.0, 1.0);
    }
    lv_lua_push_tensor(L, t, fname);
    return 1;
}

/* rand / randn (shape [, dtype] [, gen]) */
static int fill_shape(lua_State *L, const char *fname, fill_kind kind)
{
    int64_t shape[LV_MAX_DIMS];
    int ndim = lv_lua_check_shape(L, 1, shape);
    lv_dtype dtype;
    lv_generator *g = opt_dtype_generator(L, 2, &dtype);
    return push_filled(L, fname, kind, g, dtype, ndim, shape);
}

/* rand_like / randn_like (x [, gen]): x's shape and dtype. */
static int fill_like(lua_State *L, const char *fname, fill_kind kind)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    lv_generator *g = opt_generator(L, 2);
    return push_filled(L, fname, kind, g, x->dtype, x->ndim, x->shape);
}

static int rng_rand(lua_State *L) { return fill_shape(L, "rand", FILL_UNIFORM); }
static int rng_randn(lua_State *L) { return fill_shape(L, "randn", FILL_NORMAL); }

static int rng_rand_like(lua_State *L)
{
    return fill_like(L, "rand_like", FILL_UNIFORM);
}

static int rng_randn_like(lua_State *L)
{
    return fill_like(L, "randn_like", FILL_NORMAL);
}

/* bernoulli(p [, gen]) with p a tensor: 0/1 of p's shape and dtype.
 * A non-contiguous p is first copied into the result, which is then drawn
 * in place (rng.h allows p == out), so no temporary is needed. */
static int bernoulli_tensor(lua_State *L, lv_tensor *p)
{
    lv_generator *g = opt_generator(L, 2);
    int64_t n = lv_tensor_numel(p);
    int contiguous = lv_tensor_is_contiguous(p);

    /* Validate every probability before allocating: each stored value
     * once, so that an expanded view of 2^40 elements over three values
     * is three reads (and then an allocation that fails), not a hang. */
    lv_tensor distinct = *p;
    for (int d = 0; d < distinct.ndim; d++)
        if (distinct.stride[d] == 0)
            distinct.shape[d] = 1;
    int64_t n_distinct = lv_tensor_numel(&distinct);
    for (int64_t i = 0; i < n_distinct; i++) {
        double v;
        if (!contiguous)
            v = lv_tensor_get_linear(&distinct, i);
        else
            v = lv_load_double(lv_tensor_data(p), p->dtype, i);
        if (!is_probability(v))
            return luaL_argerror(L, 1, "probabilities must lie in [0, 1]");
    }

    lv_tensor *t = lv_tensor_empty(p->dtype, p->ndim, p->shape);
    if (t) {
        void *out = lv_tensor_data(t);
        const void *probs = lv_tensor_data(p);
        if (!contiguous) {
            for (int64_t i = 0; i < n; i++)
                lv_store_double(out, p->dtype, i, lv_tensor_get_linear(p, i));
            probs = out;
        }
        lv_rng_bernoulli(g, p->dtype, out, n, probs, 0.0);
    }
    lv_lua_push_tensor(L, t, "bernoulli");
    return 1;
}

/* bernoulli(shape, p [, dtype] [, gen]) with p a number. */
static int bernoulli_shape(lua_State *L)
{
    int64_t shape[LV_MAX_DIMS];
    int ndim = lv_lua_check_shape(L, 1, shape);
    double p = (double)luaL_checknumber(L, 2);
    luaL_argcheck(L, is_probability(p), 2, "probabilities must lie in [0, 1]");
    lv_dtype dtype;
    lv_generator *g = opt_dtype_generator(L, 3, &dtype);

    lv_tensor *t = lv_tensor_empty(dtype, ndim, shape);
    if (t)
        lv_rng_bernoulli(g, dtype, lv_tensor_data(t), lv_tensor_numel(t),
                         NULL, p);
    lv_lua_push_tensor(L, t, "bernoulli");
    return 1;
}

static int rng_bernoulli(lua_State *L)
{
    lv_tensor *p = lv_lua_test_tensor(L, 1);
    if (p)
        return bernoulli_tensor(L, p);
    if (lua_istable(L, 1) || lua_type(L, 1) == LUA_TNUMBER)
        return bernoulli_shape(L);   /* a number is a 1-d shape, as in rand */
    return luaL_typeerror(L, 1, "tensor or shape table");
}

/* ---- the known-answer hook ------------------------------------------------ */

/* Reads n words in [0, 2^32) from the table at idx. */
static void check_words(lua_State *L, int idx, uint32_t *w, int n,
                        const char *msg)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    for (int i = 0; i < n; i++) {
        lua_geti(L, idx, i + 1);
        int ok;
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < 0 || v > (lua_Integer)UINT32_MAX)
            luaL_argerror(L, idx, msg);
        w[i] = (uint32_t)v;
        lua_pop(L, 1);
    }
}

/* ---- shards --------------------------------------------------------------- */

/* set_shard(g, first, rows, total) or set_shard(g) to remove it. */
static int set_shard_at(lua_State *L, lv_generator *g, int idx)
{
    if (lua_gettop(L) < idx || (lua_gettop(L) == idx && lua_isnil(L, idx))) {
        lv_generator_set_shard(g, 0, 0, 0);
        return 0;
    }
    lua_Integer first = luaL_checkinteger(L, idx);
    lua_Integer rows = luaL_checkinteger(L, idx + 1);
    lua_Integer total = luaL_checkinteger(L, idx + 2);
    if (lv_generator_set_shard(g, first, rows, total) != 0)
        return lv_lua_raise(L, "set_shard");
    return 0;
}

static int push_shard(lua_State *L, const lv_generator *g)
{
    if (g->shard_rows == 0)
        return 0;
    lua_pushinteger(L, g->shard_first);
    lua_pushinteger(L, g->shard_rows);
    lua_pushinteger(L, g->shard_total);
    return 3;
}

static int rng_set_shard(lua_State *L)
{
    return set_shard_at(L, lv_generator_default(), 1);
}

static int rng_shard(lua_State *L) { return push_shard(L, lv_generator_default()); }

static int generator_set_shard(lua_State *L)
{
    return set_shard_at(L, check_generator(L, 1), 2);
}

static int generator_shard(lua_State *L) { return push_shard(L, check_generator(L, 1)); }

/* Draws a batch's noise: the last dimension one row, the others
 * sample-major rows (rng.h, lv_rng_*_rows); under a sharded generator
 * this process's rows. */
static int batch_draw(lua_State *L, const char *fname, int normal)
{
    int64_t shape[LV_MAX_DIMS];
    int ndim = lv_lua_check_shape(L, 1, shape);
    luaL_argcheck(L, ndim >= 2, 1, "needs at least two dimensions (rows and a row)");
    lv_dtype dtype;
    lv_generator *g = opt_dtype_generator(L, 2, &dtype);
    lv_tensor *t = lv_tensor_empty(dtype, ndim, shape);
    lv_lua_push_tensor(L, t, fname);
    int64_t row_len = shape[ndim - 1];
    int64_t rows = row_len > 0 ? lv_tensor_numel(t) / row_len : 0;
    if (rows > 0) {
        int rc = normal ? lv_rng_normal_rows(g, dtype, lv_tensor_data(t), rows, row_len, 0.0, 1.0)
                        : lv_rng_uniform_rows(g, dtype, lv_tensor_data(t), rows, row_len);
        if (rc != 0)
            return lv_lua_raise(L, fname);
    }
    return 1;
}

/* randn_batch(shape [, dtype] [, gen]): standard normal batch noise. */
static int rng_randn_batch(lua_State *L) { return batch_draw(L, "randn_batch", 1); }
/* rand_batch(shape [, dtype] [, gen]): uniform [0, 1) batch noise. */
static int rng_rand_batch(lua_State *L) { return batch_draw(L, "rand_batch", 0); }

/* lv._philox({c0, c1, c2, c3}, {k0, k1}) -> four integers. */
static int rng_philox(lua_State *L)
{
    uint32_t ctr[4], key[2], out[4];
    check_words(L, 1, ctr, 4, "4 integers in [0, 2^32) expected");
    check_words(L, 2, key, 2, "2 integers in [0, 2^32) expected");
    lv_philox4x32_10(out, ctr, key);
    for (int i = 0; i < 4; i++)
        lua_pushinteger(L, (lua_Integer)out[i]);
    return 4;
}

/* ---- registration ----------------------------------------------------------- */

static const luaL_Reg rng_functions[] = {
    {"manual_seed", rng_manual_seed},
    {"seed", rng_seed},
    {"get_rng_state", rng_get_rng_state},
    {"set_rng_state", rng_set_rng_state},
    {"Generator", rng_generator_new},
    {"rand", rng_rand},
    {"randn", rng_randn},
    {"randn_batch", rng_randn_batch},
    {"rand_batch", rng_rand_batch},
    {"set_shard", rng_set_shard},
    {"shard", rng_shard},
    {"bernoulli", rng_bernoulli},
    {"_philox", rng_philox},
    {NULL, NULL}
};

static const luaL_Reg rng_methods[] = {
    {"rand_like", rng_rand_like},
    {"randn_like", rng_randn_like},
    {NULL, NULL}
};

static const luaL_Reg generator_methods[] = {
    {"manual_seed", generator_manual_seed},
    {"seed", generator_seed},
    {"get_state", generator_get_state},
    {"set_state", generator_set_state},
    {"set_shard", generator_set_shard},
    {"shard", generator_shard},
    {NULL, NULL}
};

void lv_open_rng(lua_State *L)
{
    lv_lua_register(L, rng_functions, 0);
    lv_lua_register(L, rng_methods, 1);

    luaL_newmetatable(L, LV_GENERATOR_MT);
    lua_pushcfunction(L, generator_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, generator_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
