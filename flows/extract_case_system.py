"""Extract flow: case_system."""

from flows._extract import make_extract_flow

extract_case_system = make_extract_flow("case_system")

if __name__ == "__main__":
    extract_case_system()
