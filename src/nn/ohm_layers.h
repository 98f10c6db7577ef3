/* ohm_layers: the layer-list language of `model.layers` (docs/usage.md,
 * section "Model layers").
 *
 *   layers := layer ("," layer)*
 *   layer  := "conv:" C "x" K ["x" K2] opt*    C output channels, kernel K x K (or K x K2)
 *           | "pool:" ("max" | "avg") K ["x" K2] opt*
 *                                              K x K (or K x K2) window, moved by
 *                                              its own size unless /s says
 *           | "fc:" N                          dense layer of N outputs
 *           | "flatten"                        marks the change from images to vectors
 *   opt    := "/s" S | "/p" P                  stride S >= 1 (both directions); zero
 *                                              padding P on every side (conv only)
 *
 * e.g. "conv:6x5x5/p2,pool:max2,conv:16x5x5,pool:max2,fc:120,fc:84,fc:10".
 * Blanks around tokens are allowed. This module only reads and writes the text;
 * whether the layers fit an input shape is ohm_plan's business. */
#ifndef OHM_LAYERS_H
#define OHM_LAYERS_H

#include <stddef.h>

enum {
    OHM_LAYER_FC = 0,
    OHM_LAYER_CONV,
    OHM_LAYER_MAXPOOL,
    OHM_LAYER_AVGPOOL,
    OHM_LAYER_FLATTEN /* no computation: images are stored flat already */
};

/* Most layers in one list (tokens, flatten included). */
#define OHM_LAYERS_MAX 16

typedef struct {
    int kind;   /* OHM_LAYER_* */
    int out;    /* fc: outputs; conv: output channels; else 0 */
    int kh, kw; /* conv kernel, pool window; else 0 */
    int stride; /* conv: >= 1; pool: >= 1, or 0 = the window (kh down, kw across); else 0 */
    int pad;    /* conv: zero padding on each side; else 0 */
} ohm_layer_spec_t;

/* Parses `text` into l[OHM_LAYERS_MAX] and sets *n. On a bad token returns
 * OHM_EINVAL (OHM_ETOOBIG for too many layers) with a detail
 * "<origin>: model.layers: bad token '<token>' (<why>)"; l and n are then
 * unspecified. An empty text is an empty list. */
int ohm_layers_parse(const char *text, const char *origin, ohm_layer_spec_t *l, int *n);

/* Canonical text of one layer ("conv:6x5x5/p2", "pool:max2", "fc:10") into buf[cap]. */
void ohm_layer_format(const ohm_layer_spec_t *l, char *buf, size_t cap);

/* Canonical text of a list, comma-separated, into buf[cap] (truncated to fit). */
void ohm_layers_format(const ohm_layer_spec_t *l, int n, char *buf, size_t cap);

#endif
