from gateway.app import main

# Worker processes (SIYU_GATEWAY_WORKERS) are spawned: they import this module again and
# must not start a gateway of their own.
if __name__ == "__main__":
    main()
