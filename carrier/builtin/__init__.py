"""The kernel's stdlib-only defaults, registered ``trylast`` so any plugin overrides them."""
