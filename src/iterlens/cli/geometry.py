"""Commands of the geometry check: relative updates and linear CKA of a store, and its figure."""

from __future__ import annotations

from iterlens.cli import arg, command, log


@command(
    "geometry",
    "relative update of each block and linear CKA between every pair of layers of a store",
    arg("--store", required=True, help="an activation store folder (the eval store)"),
    arg("--updates-out", required=True, help="table of relative updates (updates.csv)"),
    arg("--cka-out", required=True, help="table of linear CKA (cka.csv)"),
    arg("--layers", nargs="+", type=int, help="the layers CKA compares (default: all)"),
    arg("--max-examples", type=int, help="read at most this many examples for CKA"),
    arg("--batch-size", type=int, default=4096),
)
def geometry(args):
    from iterlens.io import write_table
    from iterlens.probing.geometry import cka_memory_bytes, linear_cka, relative_updates
    from iterlens.probing.store import ActivationStore

    store = ActivationStore(args.store)
    n_layers = len(args.layers) if args.layers else store.n_layers + 1
    log.info(
        "store %s: %d examples, L=%d, d=%d; CKA sums %.1f MB",
        args.store,
        store.n_examples,
        store.n_layers,
        store.d_model,
        cka_memory_bytes(n_layers, store.d_model) / 1e6,
    )
    write_table(relative_updates(store, args.batch_size), args.updates_out)
    write_table(linear_cka(store, args.layers, args.max_examples, args.batch_size), args.cka_out)


@command(
    "figure-geometry",
    "figure: relative update per block (one line a model) beside one model's CKA heatmap",
    arg("--updates", nargs="+", required=True, help="updates.csv of the models drawn"),
    arg("--cka", required=True, help="cka.csv of the model"),
    arg("--out", required=True),
    arg("--title", help="the figure's title"),
)
def figure_geometry(args):
    from iterlens.report.geometry_figures import plot_geometry

    plot_geometry(args.updates, args.cka, args.out, args.title)
