# Shared basis, or layers that barely change? Per probed model, from its eval store: the
# relative update ||h_{l+1} - h_l|| / ||h_l|| of each block and linear CKA between every pair
# of layers; then one figure per studied model (its updates beside its untrained twin's, and
# its CKA heatmap).


rule geometry:
    input:
        store=A.STORE_MANIFEST.format(model="{model}", split="eval"),
    output:
        updates=A.UPDATES,
        cka=A.CKA,
    wildcard_constraints:
        model=one_of(PROBED),
    params:
        store=folder_of("input", "store"),
    threads: 1
    resources:
        mem_mb=4000,
    log:
        "logs/geometry/{model}.log",
    message:
        "Geometry of {wildcards.model}: relative update per block, linear CKA between layers"
    shell:
        "iterlens geometry --threads {threads} --store {params.store} "
        "--updates-out {output.updates} --cka-out {output.cka} > {log} 2>&1"


rule figure_geometry:
    input:
        updates=family_tables(A.UPDATES),
        cka=A.CKA.format(model="{family}"),
    output:
        report(A.FIGURE.format(name="{family}_geometry"), caption="../report/geometry.rst",
               category="{family}"),
    wildcard_constraints:
        family=one_of(FAMILIES),
    threads: 1
    resources:
        mem_mb=1000,
    log:
        "logs/figures/{family}_geometry.log",
    message:
        "Figure: relative updates and layer-to-layer CKA of {wildcards.family}"
    shell:
        "iterlens figure-geometry --updates {input.updates} --cka {input.cka} "
        "--title {wildcards.family} --out {output} > {log} 2>&1"


TARGETS += expand([A.UPDATES, A.CKA], model=PROBED)
TARGETS += expand(A.FIGURE, name=[f"{family}_geometry" for family in FAMILIES])
