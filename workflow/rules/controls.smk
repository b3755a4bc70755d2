# Positive control: the rotated twin of each trained model (its stored activations with layer
# l rotated by a fixed random orthogonal Q_l, Q_L = I; no forward pass). The twin is a probed
# model like any other: fit_lenses and evaluate (lenses.smk) probe it; then one table and one
# figure put every model beside its twin. An entry's `controls: {rotated: false}` leaves its
# twin out.


rule rotate_store:
    input:
        readout=A.MODEL_READOUT.format(model="{family}"),
        stores=expand(A.STORE_MANIFEST, model="{family}", split=A.STORE_SPLITS),
    output:
        readout=A.MODEL_READOUT.format(model="{family}_rotated"),
        stores=expand(A.STORE_MANIFEST, model="{family}_rotated", split=A.STORE_SPLITS),
    wildcard_constraints:
        family=one_of([STUDY.entry_of(m).name for m in ROTATED]),
    params:
        stores=store_folders,
        out=folder_of("output", "readout"),
        seed=config["seed"],
    threads: 1
    priority: LM_PATH
    resources:
        mem_mb=2000,
    log:
        "logs/rotate/{family}.log",
    message:
        "Rotated twin of {wildcards.family}: a random orthogonal basis at every layer but the last"
    shell:
        "iterlens rotate-store --readout {input.readout} --store {params.stores} "
        "--out {params.out} --seed {params.seed} > {log} 2>&1"


# Dose-response control: the partial rotations {family}_rot<ddd> of the rotated twin, layer l
# mapped by Q_l(t) = expm(t log Q_l), t = ddd / 100 (iterlens.probing.rotate); t = 0 is the
# model and t = 1 the rotated twin. An entry's `controls: {dose_response: [...]}` sets the
# interior t (default: [0.25, 0.5] for an LM with the rotated twin, none for a CNN). They are
# fitted and evaluated like the rotated twin (tuned and shared lens only).
PARTIAL = STUDY.partial_twins
DOSE_FAMILIES = STUDY.dose_families
DOSE_TAGS = sorted({A.dose_tag(t) for m in STUDY.models for t in m.dose_response})
DOSE_MODELS = [model for m in STUDY.models for _, model in m.dose_models]  # t = 0 .. 1


rule partial_rotate_store:
    input:
        readout=A.MODEL_READOUT.format(model="{family}"),
        stores=expand(A.STORE_MANIFEST, model="{family}", split=A.STORE_SPLITS),
    output:
        readout=A.MODEL_READOUT.format(model="{family}_rot{dose}"),
        stores=expand(A.STORE_MANIFEST, model="{family}_rot{dose}", split=A.STORE_SPLITS),
    wildcard_constraints:
        family=one_of(DOSE_FAMILIES),
        dose=one_of(DOSE_TAGS),
    params:
        stores=store_folders,
        out=folder_of("output", "readout"),
        seed=config["seed"],
        t=lambda wildcards: int(wildcards.dose) / 100,
    threads: 1
    resources:
        mem_mb=2000,
    log:
        "logs/rotate/{family}_rot{dose}.log",
    message:
        "Partial rotation of {wildcards.family} at t = {params.t}: expm(t log Q_l) at every "
        "layer but the last"
    shell:
        "iterlens rotate-store --readout {input.readout} --store {params.stores} "
        "--out {params.out} --seed {params.seed} --t {params.t} > {log} 2>&1"


# The generic evaluation, reading the tuned and shared lens only (as the rotated twin's).
use rule evaluate as evaluate_partial with:
    input:
        unpack(lm_prior_inputs),
        store=A.STORE_MANIFEST.format(model="{model}", split="eval"),
        readout=A.MODEL_READOUT,
        lenses=expand(A.LENS_DIR, model="{model}", kind=ROTATED_LENS_KINDS),
    wildcard_constraints:
        model=one_of(PARTIAL),


ruleorder: evaluate_partial > evaluate


# The generic lens fit, for the tuned and shared lens only (see ROTATED_LENS_KINDS).
use rule fit_lenses as fit_lenses_rotated with:
    output:
        lenses=directory(expand(A.LENS_DIR, model="{model}", kind=ROTATED_LENS_KINDS)),
        curves=expand(A.FIT_CURVE, model="{model}", kind=ROTATED_LENS_KINDS),
    params:
        cfg=model_cfg("lens", "probe"),
        kinds=ROTATED_LENS_KINDS,
        store=folder_of("input", "store"),
        out=folder_of("output", "lenses"),
        curves=folder_of("output", "curves"),
    wildcard_constraints:
        model=one_of(ROTATED + PARTIAL),
    message:
        "Fit the tuned lens and shared lens of {wildcards.model}"


ruleorder: fit_lenses_rotated > fit_lenses


ROTATED_FAMILIES = [STUDY.entry_of(m).name for m in ROTATED]


rule rotated_control:
    input:
        metrics=expand(A.LENS_METRICS, model=ROTATED_FAMILIES + ROTATED),
        transfer=expand(A.TRANSFER, model=ROTATED_FAMILIES + ROTATED),
    output:
        A.ROTATED_CONTROL,
    resources:
        mem_mb=1000,
    log:
        "logs/rotated_control.log",
    message:
        "Table: every trained model beside its rotated twin"
    shell:
        "iterlens rotated-control --metrics {input.metrics} --transfer {input.transfer} "
        "--out {output} > {log} 2>&1"


rule figure_rotated_control:
    input:
        A.ROTATED_CONTROL,
    output:
        report(A.FIGURE.format(name="rotated_control"), caption="../report/rotated_control.rst",
               category="Controls"),
    resources:
        mem_mb=1000,
    log:
        "logs/figures/rotated_control.log",
    message:
        "Figure: every trained model beside its rotated twin"
    shell:
        "iterlens plot --figure rotated_control --inputs {input} --out {output} > {log} 2>&1"


if ROTATED:
    TARGETS += [A.ROTATED_CONTROL, A.FIGURE.format(name="rotated_control")]


rule dose_response:
    input:
        expand(A.EXAMPLES, model=DOSE_MODELS),
    output:
        A.DOSE_RESPONSE,
    resources:
        mem_mb=2000,
    log:
        "logs/dose_response.log",
    message:
        "Table: transfer and shared-lens penalties against the rotation size t"
    shell:
        "iterlens dose-response --examples {input} --out {output} > {log} 2>&1"


if PARTIAL:
    TARGETS += [A.DOSE_RESPONSE]  # drawn by the paper's figure_paper_dose
