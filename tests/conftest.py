"""Session-wide test settings: the IR verifier runs after every compiler pass."""
import tapejit.runtime.config

tapejit.runtime.config.CONFIG.check_ir = True
