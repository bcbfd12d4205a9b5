"""Pipeline-side helpers of the sovereign-ml platform (artifact encryption, ...)."""
