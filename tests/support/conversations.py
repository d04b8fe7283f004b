"""Korean turns the chat-template tests build their conversations from (single and multi-turn, with a system
prompt); each test module adds its own reasoning and tool calls."""
from __future__ import annotations

SYSTEM = {"role": "system", "content": "당신은 친절한 한국어 도우미입니다."}
U1 = {"role": "user", "content": "제주도의 대표 음식은 무엇인가요?"}
A1 = {"role": "assistant", "content": "제주도는 흑돼지와 고기국수가 유명합니다."}
U2 = {"role": "user", "content": "그럼 서울은요?"}
A2 = {"role": "assistant", "content": "서울은 떡볶이와 설렁탕이 유명해요."}
