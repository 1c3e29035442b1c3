"""REST routes: one APIRouter per file."""
