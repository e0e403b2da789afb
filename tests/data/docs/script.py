def greet(name):
    """인사말을 돌려준다."""
    return f'안녕 {name}'
