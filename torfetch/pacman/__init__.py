"""Pure parsers for pacman's formats (file names, .PKGINFO, sync databases)."""
