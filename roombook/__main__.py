from roombook.cli import main

raise SystemExit(main())
