"""LLVM intrinsics for generated kernels, as Python source pasted into each kernel
module (helpers must live in the kernel's own file, or Numba's disk cache would
serve stale code when they change).

`tj_maximum`/`tj_minimum` are llvm.maximum/llvm.minimum: NaN-propagating, as
NumPy's max/min reductions. LLVM vectorises reductions written with them (as fast
as NumPy's SIMD max); the same reduction written with a compare and a select
stays scalar (measured 4-6x slower on a (1024, 1000) float32 row max).
"""

SOURCE = {
    name: f'''@intrinsic
def {name}(typingctx, a, b):
    def codegen(context, builder, signature, args):
        kind = "f32" if args[0].type == llvm_ir.FloatType() else "f64"
        fnty = llvm_ir.FunctionType(args[0].type, [args[0].type, args[0].type])
        fn = builder.module.globals.get(f"llvm.{op}.{{kind}}")
        if fn is None:
            fn = llvm_ir.Function(builder.module, fnty, f"llvm.{op}.{{kind}}")
        return builder.call(fn, args)
    return a(a, b), codegen
'''
    for name, op in (("tj_maximum", "maximum"), ("tj_minimum", "minimum"))
}
IMPORTS = "from llvmlite import ir as llvm_ir\nfrom numba.core.extending import intrinsic"
